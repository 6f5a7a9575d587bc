import DepthLens
import XCTest

/// IDX, CIFAR and HDF5 readers: real Fashion-MNIST bytes, normalisation, slices, and a
/// clear error for each kind of bad file.
final class DataSetReaderTests: XCTestCase {
    let subset = Fixtures.path("fashion-mnist-subset/t10k-images-idx3-ubyte.gz")
    var folder: URL!

    override func setUp() { folder = Fixtures.temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func temporary(_ name: String, _ bytes: [UInt8]) -> String {
        let path = folder.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func idx(_ dims: [Int], _ payload: [UInt8]) -> [UInt8] {
        [0, 0, 0x08, UInt8(dims.count)] + dims.flatMap { d in (0..<4).map { UInt8((d >> (8 * (3 - $0))) & 0xff) } } + payload
    }

    func testReadsGzippedFashionMNISTWithItsLabelsFile() throws {
        XCTAssertEqual(try DataSetRequest.format(of: subset), .idx)
        let labelsPath = subset.replacingOccurrences(of: "images-idx3", with: "labels-idx1")
        let source = try IDXImageSource(imagesPath: subset, labelsPath: labelsPath)
        XCTAssertEqual([source.count, source.channels, source.height, source.width], [500, 1, 28, 28])
        XCTAssertEqual(try source.labels(0..<10), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        XCTAssertEqual(try source.labels(0..<500)?.filter { $0 == 3 }.count, 46)
        let first = try source.pixels(0..<1)
        XCTAssertEqual(first.count, 784)
        // Row 14, columns 10..<16 of the first test image, as bytes 0 0 98 136 110 109, scaled to [0, 1].
        XCTAssertEqual(Array(first[(14 * 28 + 10)..<(14 * 28 + 16)]), [0, 0, 98, 136, 110, 109].map { Float($0) / 255 })
        let all = try source.pixels(0..<500)
        XCTAssertEqual(all.reduce(0.0) { $0 + Double($1) * 255 }, 29_494_551, accuracy: 1)
        XCTAssertEqual(try source.pixels(499..<500).reduce(0.0) { $0 + Double($1) * 255 }, 70_958, accuracy: 0.5)
    }

    func testPlainAndGzippedIDXGiveTheSameImages() throws {
        let bytes = (0..<(3 * 4 * 5)).map { UInt8($0 * 4) }
        let plain = temporary("images-idx3-ubyte", idx([3, 4, 5], bytes))
        let labels = temporary("labels-idx1-ubyte", idx([3], [2, 0, 1]))
        let norm = InputNormalization(mean: [0.5], std: [0.25])
        let source = try IDXImageSource(imagesPath: plain, labelsPath: labels, normalization: norm)
        XCTAssertEqual([source.count, source.height, source.width], [3, 4, 5])
        XCTAssertEqual(try source.pixels(1..<2), bytes[20..<40].map { (Float($0) / 255 - 0.5) / 0.25 })
        XCTAssertEqual(try source.labels(0..<3), [2, 0, 1])
    }

    func testRequestFindsTheLabelsFileAndAppliesTheCheckpointNormalisation() throws {
        var checkpoint = try Checkpoint.load(from: Fixtures.path("golden/official.ckpt.h5"))
        var training = checkpoint.training!
        training.normalization = .init(mean: [0.2860], std: [0.3530])
        checkpoint.training = training
        var request = DataSetRequest(path: subset)
        request.offset = 2
        request.limit = 3
        let source = try request.open(for: checkpoint)
        XCTAssertEqual(source.count, 3)
        XCTAssertEqual(try source.labels(0..<3), [1, 1, 6])
        let raw = try IDXImageSource(imagesPath: subset, labelsPath: nil).pixels(2..<3)
        let normalised = try source.pixels(0..<1)
        XCTAssertEqual(normalised[400], (raw[400] - 0.2860) / 0.3530, accuracy: 1e-6)
        request.normalization = .init(mean: [0], std: [1])
        XCTAssertEqual(try request.open(for: checkpoint).pixels(0..<1), raw)
    }

    func testReadsCIFAR10AndCIFAR100BatchesAcrossFiles() throws {
        func record(label: [UInt8], seed: Int) -> [UInt8] { label + (0..<3072).map { UInt8(($0 * 7 + seed) % 256) } }
        let a = temporary("data_batch_1.bin", record(label: [3], seed: 0) + record(label: [7], seed: 1))
        let b = temporary("data_batch_2.bin", record(label: [9], seed: 2))
        let cifar10 = try CIFARBinarySource(paths: [a, b])
        XCTAssertEqual(cifar10.variant, .cifar10)
        XCTAssertEqual(cifar10.count, 3)
        XCTAssertEqual(try cifar10.labels(0..<3), [3, 7, 9])
        let pixels = try cifar10.pixels(1..<3)
        XCTAssertEqual(pixels.count, 2 * 3072)
        XCTAssertEqual(pixels[1024], Float((1024 * 7 + 1) % 256) / 255, "green plane of record 2 starts at 1024")
        XCTAssertEqual(pixels[3072], Float(2) / 255, "record 3 comes from the second file")
        let c = temporary("train.bin", record(label: [4, 77], seed: 5))
        let cifar100 = try CIFARBinarySource(paths: [c])
        XCTAssertEqual(cifar100.variant, .cifar100)
        XCTAssertEqual(try cifar100.labels(0..<1), [77], "the fine label")
        XCTAssertEqual(try DataSetRequest.format(of: c), .cifar)
    }

    func testHDF5IntegerImagesAreNormalisedAndFloatImagesTakenAsStored() throws {
        let path = folder.appendingPathComponent("images.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write([0, 51, 255, 102] as [Int64], shape: [1, 1, 2, 2], as: "images")
            try root.write([-1.5, 2, 0, 1] as [Float], shape: [1, 2, 2], as: "floats")
            try root.write([3] as [Int64], shape: [1], as: "labels")
        }
        let norm = InputNormalization(mean: [0.2], std: [0.5])
        let ints = try HDF5ImageSource(path: path, normalization: norm)
        XCTAssertEqual(try ints.pixels(0..<1), [-0.4, 0, 1.6, 0.4].map { Float($0) }, "(x/255 - 0.2) / 0.5")
        XCTAssertEqual(try ints.labels(0..<1), [3])
        let floats = try HDF5ImageSource(path: path, imagesDataset: "floats", normalization: norm)
        XCTAssertEqual(try floats.pixels(0..<1), [-1.5, 2, 0, 1])
    }

    /// `--mean/--std` given for float images are applied, as torchvision's `Normalize`
    /// applies to a float tensor, not ignored; a checkpoint's recorded normalisation (of
    /// 8-bit pixels) still is not.
    func testAnExplicitNormalisationAppliesToFloatImagesAsStored() throws {
        let path = folder.appendingPathComponent("float-images.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write([-1.5, 2, 0, 1, 0.5, 0.25, 4, -2] as [Float], shape: [1, 2, 2, 2], as: "images")
            try root.write([1] as [Int64], shape: [1], as: "labels")
        }
        let explicit = InputNormalization(mean: [0.5, -1], std: [0.5, 2])
        let source = try HDF5ImageSource(path: path, floatNormalization: explicit)
        XCTAssertEqual(try source.pixels(0..<1), [-4, 3, -1, 1, 0.75, 0.625, 2.5, -0.5].map { Float($0) },
                       "channel 0: (x - 0.5) / 0.5; channel 1: (x + 1) / 2")
        let recordedOnly = try HDF5ImageSource(path: path, normalization: InputNormalization(mean: [0.5, 0.5], std: [0.1, 0.1]))
        XCTAssertEqual(try recordedOnly.pixels(0..<1), [-1.5, 2, 0, 1, 0.5, 0.25, 4, -2], "the 8-bit normalisation leaves floats alone")

        XCTAssertThrowsError(try HDF5ImageSource(path: path, floatNormalization: InputNormalization(mean: [0.5], std: [0.5]))) { error in
            XCTAssertEqual("\(error)", "\(path): /images: holds float images, to which the given normalisation applies: mean has 1 and std 1 values, but the images have 2 channel(s)")
        }
        let tiny = try HDF5ImageSource(path: path, floatNormalization: InputNormalization(mean: [0, 0], std: [1e-45, 1e-45]))
        XCTAssertThrowsError(try tiny.pixels(0..<1)) { error in
            XCTAssertEqual("\(error)", "\(path): /images: image 0: normalising the stored value -1.5 with mean 0.0 and std 1e-45 gives -inf; give a larger std")
        }
    }

    func testBadDataFilesGetClearMessages() throws {
        func assertError(_ body: @autoclosure () throws -> Any, _ words: [String], line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                for word in words { XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", line: line) }
            }
        }
        let truncated = temporary("t-images-idx3-ubyte", idx([4, 2, 2], [1, 2, 3, 4, 5]))
        // A plain file is checked against its header when opened; a gzipped one as it is read.
        assertError(try IDXImageSource(imagesPath: truncated, labelsPath: nil), [truncated, "declares shape [4, 2, 2] (32 bytes)", "has 21 bytes", "truncated"])
        let notIDX = temporary("junk.idx", [0x42, 0, 8, 1, 0, 0, 0, 1])
        assertError(try IDXImageSource(imagesPath: notIDX, labelsPath: nil), [notIDX, "not an IDX file"])
        let floats = temporary("f.idx", [0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0])
        assertError(try IDXImageSource(imagesPath: floats, labelsPath: nil), ["0xd is not supported"])
        let images = temporary("i-images-idx3-ubyte", idx([2, 1, 1], [0, 0]))
        let threeLabels = temporary("i-labels-idx1-ubyte", idx([3], [0, 1, 2]))
        assertError(try IDXImageSource(imagesPath: images, labelsPath: threeLabels), [threeLabels, "has 3 labels", "has 2 images"])
        assertError(try IDXImageSource(imagesPath: folder.appendingPathComponent("none").path, labelsPath: nil), ["no such file"])
        let odd = temporary("odd.bin", [UInt8](repeating: 0, count: 3075))
        assertError(try CIFARBinarySource(paths: [odd]), [odd, "not whole numbers of CIFAR-10 (3073-byte) or CIFAR-100 (3074-byte) records"])
        let text = temporary("notes.txt", Array("hello".utf8))
        assertError(try DataSetRequest.format(of: text), [text, "neither HDF5, IDX"])
        let checkpoint = try Checkpoint.load(from: Fixtures.path("golden/projection.ckpt.h5"))
        assertError(try DataSetRequest(path: subset).open(for: checkpoint), ["images have 1 channel(s)", "takes 3"])
        var beyond = DataSetRequest(path: subset)
        beyond.offset = 501
        assertError(try beyond.open(for: try Checkpoint.load(from: Fixtures.path("golden/official.ckpt.h5"))), ["offset 501 is beyond the 500 images"])
        assertError(try IDXImageSource(imagesPath: subset, labelsPath: nil, normalization: .init(mean: [0], std: [0])), ["std of channel 0 is 0.0"])
    }

    func testEvaluationRejectsLabelsOutOfRangeBeforeComputing() throws {
        let checkpoint = try Checkpoint.load(from: Fixtures.path("golden/official.ckpt.h5"))  // 7 classes, 12x12
        let images = temporary("x-images-idx3-ubyte", idx([2, 12, 12], [UInt8](repeating: 9, count: 288)))
        let labels = temporary("x-labels-idx1-ubyte", idx([2], [3, 7]))
        let source = try DataSetRequest(path: images).open(for: checkpoint)
        let evaluator = Evaluator(network: Network(checkpoint: checkpoint))
        XCTAssertThrowsError(try DataSetEvaluation.run(evaluator, on: source, gates: .allOn, batchSize: 4)) { error in
            XCTAssertTrue("\(error)".contains("label 7 of image 1 is outside 0...6"), "\(error)")
        }
        _ = labels
    }
}
