import XCTest
import DepthLens

/// The fused engine's sizing for ImageNet-size inputs (issue 24): the activation buffers
/// it plans for ResNet-50 at 224 x 224 (computed from the plan, not measured), logits that
/// do not depend on how a batch is cut into chunks (the libraries' golden logits for every
/// chunk size), and a single image split across two threads by output channels (against
/// the reference kernels).
final class ImageNetSizeEngineTests: XCTestCase {
    /// timm's / torchvision's resnet50 layout: bottleneck blocks 3-4-6-3 of inner widths
    /// 64-128-256-512 (outputs 4x), projection shortcuts, 7x7 stride-2 stem, max pooling.
    static let resnet50 = Architecture(
        family: Architecture.imageNetFamily, block: .bottleneck, inChannels: 3, numClasses: 1000, stemWidth: 64,
        stages: [.init(blocks: 3, width: 64, stride: 1), .init(blocks: 4, width: 128, stride: 2),
                 .init(blocks: 6, width: 256, stride: 2), .init(blocks: 3, width: 512, stride: 2)],
        shortcut: .projection, convBias: false)

    /// A network whose weights do not matter (the plan depends on shapes only).
    static func zeroNetwork(_ architecture: Architecture) -> Network {
        var tensors: [String: Tensor] = [:]
        for (key, shape) in architecture.expectedTensors {
            let ones = key.hasSuffix("running_var") || (shape.count == 1 && key.hasSuffix(".weight"))
            tensors[key] = Tensor(shape: shape, scalars: [Float](repeating: ones ? 1 : 0, count: shape.reduce(1, *)))
        }
        return Network(checkpoint: Checkpoint(path: "zero", architecture: architecture, training: nil, tensors: tensors))
    }

    func testResNet50At224PlansOneImageAWorkerWithinTheBudget() throws {
        let network = Self.zeroNetwork(Self.resnet50)
        let shapes = try network.activationShapes(height: 224, width: 224)
        XCTAssertEqual(shapes[0].channels, 64)
        XCTAssertEqual(shapes[1].channels, 256)
        XCTAssertEqual(shapes[1].height, 56)
        // Per image: two block-output buffers of the widest block output (256 x 56 x 56
        // floats) and two scratch buffers of the largest layer output inside the stem or a
        // block (the stem convolution's 64 x 112 x 112); no third scratch (no pre-activation).
        let perImage = (2 * 256 * 56 * 56 + 2 * 64 * 112 * 112) * 4
        let twoThreads = Evaluator(network: network, threads: 2, backend: .fast)
        // A 3.2 MB activation keeps a chunk to one image, so batch 16 is 16 chunks on two workers.
        XCTAssertEqual(twoThreads.plannedActivationBytes(batchSize: 16, height: 224, width: 224), 2 * perImage)
        XCTAssertEqual(twoThreads.plannedActivationBytes(batchSize: 64, height: 224, width: 224), 2 * perImage)
        // One image: one worker (its helper lane shares the worker's buffers).
        XCTAssertEqual(twoThreads.plannedActivationBytes(batchSize: 1, height: 224, width: 224), perImage)
        XCTAssertLessThanOrEqual(2 * perImage, Evaluator.activationBudgetBytes)
        // Four threads: four workers of one image each.
        XCTAssertEqual(Evaluator(network: network, threads: 4, backend: .fast)
            .plannedActivationBytes(batchSize: 16, height: 224, width: 224), 4 * perImage)
    }

    func testSmallImagesStillRunInChunksOfSixteen() {
        let cifar = Architecture(inChannels: 1, numClasses: 10, stemWidth: 16,
                                 stages: [.init(blocks: 3, width: 16, stride: 1), .init(blocks: 3, width: 32, stride: 2),
                                          .init(blocks: 3, width: 64, stride: 2)])
        let evaluator = Evaluator(network: Self.zeroNetwork(cifar), threads: 2, backend: .fast)
        // Two workers of 16 images; buffers of 16 x 28 x 28 floats (block outputs and
        // scratch alike, the stem's output being the widest).
        XCTAssertEqual(evaluator.plannedActivationBytes(batchSize: 64, height: 28, width: 28), 2 * 16 * 4 * 16 * 28 * 28 * 4)
        XCTAssertEqual(evaluator.plannedActivationBytes(batchSize: 8, height: 28, width: 28), 2 * 4 * 4 * 16 * 28 * 28 * 4)
    }

    /// Every chunk size gives the libraries' logits: each image alone (a chunk of one, on
    /// one worker and its helper lane with two threads), three then one, and all four at
    /// once on one thread.
    func testEveryChunkSizeGivesTheGoldenLogits() throws {
        for model in ["timm_resnet50", "torchvision_resnet50", "timm_resnet18"] {
            let network = Network(checkpoint: try InteropGoldenTests.load(model))
            let cases = try HDF5File.open(Fixtures.path("interop/\(model).cases.h5")).root
            let images = try cases.dataset("images")
            let s = images.shape
            let pixels = try images.readFloats()
            let classes = network.architecture.numClasses
            let expected = try cases.group("cases").group("all-on").dataset("logits").readFloats()
            let size = s[1] * s[2] * s[3]
            for threads in [1, 2] {
                let evaluator = Evaluator(network: network, threads: threads, backend: .fast)
                for pieces in [[1, 1, 1, 1], [3, 1], [4]] {
                    var first = 0
                    for count in pieces {
                        let batch = ImageBatch(count: count, channels: s[1], height: s[2], width: s[3],
                                               pixels: Array(pixels[(first * size)..<((first + count) * size)]))
                        let logits = try evaluator.logits(batch)
                        assertLogits(logits, match: Array(expected[(first * classes)..<((first + count) * classes)]),
                                     classes: classes, "\(model)/threads \(threads)/images \(first)..<\(first + count)")
                        first += count
                    }
                }
            }
        }
    }

    /// One image on two threads: every convolution wide and large enough is split by
    /// output channels between the worker and its helper lane (the stem's included),
    /// under every kind of gate and through the configurations API.
    func testOneImageSplitAcrossTwoThreadsMatchesTheReference() throws {
        var random = SplitMix(seed: 24)
        let architecture = Architecture(
            family: Architecture.imageNetFamily, inChannels: 3, numClasses: 10, stemWidth: 64,
            stages: [.init(blocks: 2, width: 64, stride: 1), .init(blocks: 1, width: 128, stride: 2)],
            shortcut: .projection, convBias: false)
        let network = Network(checkpoint: FusedEngineTests.randomCheckpoint(architecture, &random))
        let L = network.blockCount
        let batch = FusedEngineTests.randomBatch(count: 1, channels: 3, height: 96, width: 96, &random)
        let fast = Evaluator(network: network, threads: 2, backend: .fast)
        let reference = Evaluator(network: network, threads: 1, backend: .reference)
        let patterns: [(String, Gates)] = [
            ("all-on", .allOn),
            ("scaled", .shared((0..<L).map { _ in Float(random.uniform(0.2, 1.8)) })),
            ("dropped", .shared((0..<L).map { $0 == 1 ? 0 : 1 })),
            ("per-example", .perExample([(0..<L).map { $0 == 0 ? 0.5 : 1 }])),
        ]
        for (name, gates) in patterns {
            assertLogits(try fast.logits(batch, gates: gates), match: try reference.logits(batch, gates: gates).scalars,
                         classes: 10, "split/\(name)")
        }
        let allOn = [Float](repeating: 1, count: L)
        let lesions = [allOn] + (0..<L).map { l in allOn.enumerated().map { $0.offset == l ? 0 : 1 } }
        for (i, logits) in try fast.logits(batch, configurations: lesions).enumerated() {
            assertLogits(logits, match: try reference.logits(batch, gates: .shared(lesions[i])).scalars, classes: 10,
                         "split/lesion \(i)")
        }
    }
}
