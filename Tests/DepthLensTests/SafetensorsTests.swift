import Foundation
import XCTest
import DepthLens

/// `.safetensors` files read with a preset (tools/make_safetensors_fixtures.py writes them
/// with the `safetensors` package from the interop dump timm_resnet18d.dump.h5): F32 gives
/// exactly the HDF5 dump's tensors and logits; F16 and BF16 are widened exactly and give
/// PyTorch's logits of the rounded weights; the header is checked and errors name the file,
/// the tensor and the problem (the full corpus runs in MalformedInputTests).
final class SafetensorsTests: XCTestCase {
    static let preset = try! ArchitecturePreset.named("timm/resnet18d")
    static func interop(_ name: String) -> String { Fixtures.path("interop/\(name)") }

    /// The cases of timm_resnet18d: images, and (name, gates, golden group) per case.
    static func cases() throws -> (ImageBatch, [(String, Gates)]) {
        let root = try HDF5File.open(interop("timm_resnet18d.cases.h5")).root
        let images = try root.dataset("images")
        let s = images.shape
        let batch = ImageBatch(count: s[0], channels: s[1], height: s[2], width: s[3], pixels: try images.readFloats())
        let group = try root.group("cases")
        return (batch, try group.memberNames().map { ($0, try goldenGates(try group.group($0))) })
    }

    func testF32FileGivesTheHDF5DumpsTensorsAndLogitsExactly() throws {
        let dump = try Checkpoint.load(from: Self.interop("timm_resnet18d.dump.h5"), preset: Self.preset)
        let file = Self.interop("timm_resnet18d.safetensors")
        let checkpoint = try Checkpoint.load(from: file, preset: Self.preset)
        XCTAssertEqual(checkpoint.architecture, dump.architecture)
        XCTAssertEqual(checkpoint.tensors.count, dump.tensors.count)
        XCTAssertEqual(checkpoint.tensors, dump.tensors)
        XCTAssertEqual(checkpoint.provenance["source"], "safetensors state_dict")
        // The file as the safetensors package wrote it: metadata kept, counters as I64.
        let raw = try SafetensorsFile.open(file)
        XCTAssertEqual(raw.metadata["format"], "pt")
        XCTAssertEqual(raw.entries["bn1.num_batches_tracked"]?.dtype, .i64)
        XCTAssertEqual(raw.entries["layer3.0.downsample.1.weight"]?.shape, [16, 8, 1, 1])  // avg pool, conv, batch norm
        XCTAssertEqual(raw.entries["layer3.0.downsample.2.weight"]?.shape, [16])

        let golden = try HDF5File.open(Self.interop("timm_resnet18d.cases.h5")).root.group("cases")
        let (batch, cases) = try Self.cases()
        XCTAssertGreaterThanOrEqual(cases.count, 9)
        for backend in [Evaluator.Backend.reference, .fast] {
            let fromSafetensors = Evaluator(network: Network(checkpoint: checkpoint), threads: 2, backend: backend)
            let fromDump = Evaluator(network: Network(checkpoint: dump), threads: 2, backend: backend)
            for (name, gates) in cases {
                let logits = try fromSafetensors.logits(batch, gates: gates)
                XCTAssertEqual(logits, try fromDump.logits(batch, gates: gates), "\(backend)/\(name): not identical to the HDF5 dump's")
                assertLogits(logits, match: try golden.group(name).dataset("logits").readFloats(), classes: 10, "\(backend)/\(name)")
            }
        }
    }

    func testF16AndBF16AreWidenedExactlyAndGivePyTorchsLogitsOfTheRoundedWeights() throws {
        let dump = try Checkpoint.load(from: Self.interop("timm_resnet18d.dump.h5"), preset: Self.preset)
        let golden = try HDF5File.open(Self.interop("timm_resnet18d.cases.h5")).root.group("cases")
        let rounded = try HDF5File.open(Self.interop("timm_resnet18d.rounded.h5")).root
        let (batch, cases) = try Self.cases()
        // float32 -> bfloat16, round to nearest even (PyTorch's rule; no NaN here).
        func bfloat16(_ x: Float) -> Float {
            let bits = x.bitPattern
            return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
        }
        for (dtype, round) in [("F16", { Float(Float16($0)) }), ("BF16", bfloat16)] as [(String, (Float) -> Float)] {
            let file = Self.interop("timm_resnet18d.\(dtype.lowercased()).safetensors")
            XCTAssertEqual(try SafetensorsFile.open(file).entries["fc.weight"]?.dtype.rawValue, dtype)
            let checkpoint = try Checkpoint.load(from: file, preset: Self.preset)
            XCTAssertEqual(checkpoint.architecture, dump.architecture)
            var changed = 0
            for (key, tensor) in dump.tensors {
                let mine = try XCTUnwrap(checkpoint.tensors[key], key)
                XCTAssertEqual(mine.shape, tensor.shape, key)
                XCTAssertEqual(mine.scalars, tensor.scalars.map(round), "\(dtype) \(key): not the rounded float32 values")
                changed += zip(mine.scalars, tensor.scalars).filter { $0 != $1 }.count
            }
            XCTAssertGreaterThan(changed, 1000, "\(dtype): the rounding changed (almost) nothing")
            let expected = try rounded.group(dtype)
            for backend in [Evaluator.Backend.reference, .fast] {
                let evaluator = Evaluator(network: Network(checkpoint: checkpoint), threads: 2, backend: backend)
                var furthestFromFloat32: Float = 0
                for (name, gates) in cases {
                    let logits = try evaluator.logits(batch, gates: gates)
                    assertLogits(logits, match: try expected.group(name).dataset("logits").readFloats(), classes: 10,
                                 "\(dtype)/\(backend)/\(name)")
                    let float32 = try golden.group(name).dataset("logits").readFloats()
                    furthestFromFloat32 = max(furthestFromFloat32, zip(logits.scalars, float32).map { abs($0 - $1) }.max() ?? 0)
                }
                // The rounded golden is not the float32 one: the comparison above can fail.
                XCTAssertGreaterThan(furthestFromFloat32, 1e-3, "\(dtype)/\(backend)")
            }
        }
    }

    func testTheFormatIsToldByContentNotByName() throws {
        let directory = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let reference = try Checkpoint.load(from: Self.interop("timm_resnet18d.dump.h5"), preset: Self.preset).tensors
        // A safetensors file named .h5, and an HDF5 dump named .safetensors.
        let safetensors = directory.appendingPathComponent("weights.h5").path
        let hdf5 = directory.appendingPathComponent("weights.safetensors").path
        try FileManager.default.copyItem(atPath: Self.interop("timm_resnet18d.safetensors"), toPath: safetensors)
        try FileManager.default.copyItem(atPath: Self.interop("timm_resnet18d.dump.h5"), toPath: hdf5)
        XCTAssertTrue(SafetensorsFile.isSafetensors(path: safetensors))
        XCTAssertFalse(SafetensorsFile.isSafetensors(path: hdf5))
        XCTAssertEqual(try Checkpoint.load(from: safetensors, preset: Self.preset).tensors, reference)
        XCTAssertEqual(try Checkpoint.load(from: hdf5, preset: Self.preset).tensors, reference)
        XCTAssertFalse(SafetensorsFile.isSafetensors(path: Fixtures.path("golden/official.ckpt.h5")))
    }

    func testWithoutAPresetTheErrorSaysOneIsNeeded() throws {
        let file = Self.interop("timm_resnet18d.safetensors")
        XCTAssertThrowsError(try Checkpoint.load(from: file)) { error in
            let error = error as? CheckpointError
            XCTAssertEqual(error?.location, "preset")
            XCTAssertTrue(error?.message.contains("records no DepthLens architecture") ?? false, "\(String(describing: error))")
            XCTAssertFalse("\(String(describing: error))".contains("--"), "a flag name in a library error")
        }
        // The wrong preset is caught by the shared verification, naming the key.
        XCTAssertThrowsError(try Checkpoint.load(from: file, preset: try ArchitecturePreset.named("timm/resnet18"))) {
            XCTAssertTrue("\($0)".contains("conv1.weight: missing tensor"), "\($0)")
        }
    }

    /// The safetensors cases of the malformed corpus through the library: each fails with
    /// its message, as a CheckpointError.
    func testEveryMalformedSafetensorsFileIsRefusedByTheLibraryWithItsMessage() throws {
        let table = try String(contentsOfFile: Fixtures.path("malformed/cases.tsv"), encoding: .utf8)
        var checked = 0
        for line in table.split(separator: "\n") where line.hasPrefix("st-") {
            let columns = line.split(separator: "\t").map(String.init)
            let arguments = columns[3].split(separator: " ").map(String.init)
            guard let arch = arguments.firstIndex(of: "--arch").map({ arguments[$0 + 1] }) else { continue }
            let path = arguments[1].replacingOccurrences(of: "{m}", with: Fixtures.path("malformed"))
            XCTAssertThrowsError(try Checkpoint.load(from: path, preset: try ArchitecturePreset.named(arch)), columns[0]) { error in
                XCTAssertTrue(error is CheckpointError, "\(columns[0]): \(type(of: error))")
                XCTAssertFalse("\(error)".contains("\n"), "\(columns[0]): not one line: \(error)")
                for fragment in columns[2].components(separatedBy: " && ") {
                    let expanded = fragment.replacingOccurrences(of: "{m}", with: Fixtures.path("malformed"))
                    XCTAssertTrue("\(error)".contains(expanded), "\(columns[0]): '\(error)' lacks '\(expanded)'")
                }
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 20)
    }
}
