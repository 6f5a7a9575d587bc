import XCTest
import DepthLens

/// The HDF5 layer reads what h5py writes, writes what it reads, and turns every failure
/// into an error naming the file and the object.
final class HDF5LayerTests: XCTestCase {
    func testReadsGroupsDatasetsShapesAndAttributesWrittenByH5py() throws {
        let root = try HDF5File.open(Fixtures.path("golden/official.ckpt.h5")).root
        XCTAssertEqual(try root.memberNames(), ["tensors"])
        XCTAssertEqual(try root.kind(of: "tensors"), .group)
        XCTAssertEqual(try root.attribute("format").string, "depthlens.checkpoint")
        XCTAssertEqual(try root.attribute("format_version").integer, 1)
        XCTAssertTrue(try root.attributeNames().contains("architecture"))
        let weight = try root.group("tensors").dataset("layer2.0.conv1.weight")
        XCTAssertEqual(weight.shape, [8, 4, 3, 3])
        XCTAssertEqual(weight.elementType, .float(bits: 32))
        XCTAssertEqual(try weight.readFloats().count, 8 * 4 * 3 * 3)
        XCTAssertEqual(try weight.readDoubles().count, 8 * 4 * 3 * 3)
    }

    func testRoundTripsFloatsIntegersAndAttributes() throws {
        let folder = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("roundtrip.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write([1.5, -2, 3.25, 4, 5, 6], shape: [2, 3], as: "floats")
            try root.write([7, -8, 9] as [Int64], shape: [3], as: "integers")
            try root.setAttribute("note", string: "gates: ünïcode")
            try root.setAttribute("count", integer: 42)
            let group = try root.createGroup("inner")
            try group.write([0.5], shape: [1], as: "x")
        }
        let root = try HDF5File.open(path).root
        let floats = try root.dataset("floats")
        XCTAssertEqual(floats.shape, [2, 3])
        XCTAssertEqual(try floats.readFloats(), [1.5, -2, 3.25, 4, 5, 6])
        XCTAssertEqual(try floats.readFloats(rows: 1..<2), [4, 5, 6])
        XCTAssertEqual(try root.dataset("integers").readIntegers(), [7, -8, 9])
        XCTAssertEqual(try root.dataset("integers").elementType, .signedInteger(bits: 64))
        XCTAssertEqual(try root.attribute("note").string, "gates: ünïcode")
        XCTAssertEqual(try root.attribute("count").integer, 42)
        XCTAssertEqual(try root.group("inner").dataset("x").readFloats(), [0.5])
        XCTAssertEqual(try root.memberNames().sorted(), ["floats", "inner", "integers"])
    }

    func testMissingFileIsAClearError() {
        assertHDF5Error(try HDF5File.open("/nonexistent/file.h5"), contains: "no such file")
    }

    func testTextFileIsNotHDF5() {
        assertHDF5Error(try HDF5File.open(Fixtures.path("malformed/not-hdf5.h5")), contains: "not an HDF5 file")
    }

    func testEmptyFileIsAClearError() {
        assertHDF5Error(try HDF5File.open(Fixtures.path("malformed/empty.h5")), contains: "empty")
    }

    func testTruncatedFilesFailWithoutCrashing() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("malformed"))
            .filter { $0.hasPrefix("truncated-") }
        XCTAssertEqual(names.count, 4)
        for name in names {
            let path = Fixtures.path("malformed/\(name)")
            XCTAssertThrowsError(try Checkpoint.load(from: path), name) { error in
                XCTAssertTrue("\(error)".contains(path), "\(name): \(error)")
            }
        }
    }

    func testMissingObjectNamesItsPath() throws {
        let root = try HDF5File.open(Fixtures.path("golden/official.ckpt.h5")).root
        assertHDF5Error(try root.dataset("nope"), contains: "/nope: no such object")
        assertHDF5Error(try root.group("tensors").dataset("fc.weightx"), contains: "/tensors/fc.weightx: no such object")
        assertHDF5Error(try root.attribute("nope"), contains: "/@nope: no such attribute")
    }

    func testWrongKindAndTypeAreErrors() throws {
        let root = try HDF5File.open(Fixtures.path("golden/official.ckpt.h5")).root
        assertHDF5Error(try root.dataset("tensors"), contains: "/tensors: is not a dataset")
        assertHDF5Error(try root.group("tensors").group("fc.bias"), contains: "/tensors/fc.bias: is not a group")
        assertHDF5Error(try root.group("tensors").dataset("fc.bias").readIntegers(),
                        contains: "/tensors/fc.bias: expected an integer dataset, found float32")
        assertHDF5Error(try root.group("tensors").dataset("fc.bias").readFloats(rows: 0..<99), contains: "outside the first dimension")
    }

    func testDeclaredSizeTooLargeToAllocateIsAnErrorNotACrash() throws {
        let root = try HDF5File.open(Fixtures.path("malformed/tensor-huge-declared.h5")).root
        let huge = try root.group("tensors").dataset("fc.weight")
        XCTAssertEqual(huge.shape, [3, 1 << 40])
        assertHDF5Error(try huge.readFloats(), contains: "too large to read")
    }

    private func assertHDF5Error<T>(_ expression: @autoclosure () throws -> T, contains text: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            XCTAssertTrue(error is HDF5Error, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(text), "'\(error)' does not contain '\(text)'", file: file, line: line)
        }
    }
}
