import XCTest
import DepthLens

/// The fused (oneDNN) engine against the plain reference kernels on random networks and
/// inputs: every block kind, shortcut, channel padding and width (multiples of 16 use
/// nChw16c, others nChw8c with padded channels), shared, scaled and per-example gates,
/// reordered blocks, and the configurations API with its prefix sharing. Max |logit
/// difference| <= 1e-4 and the same argmax.
final class FusedEngineTests: XCTestCase {
    struct Case {
        var name: String
        var architecture: Architecture
        var height: Int
        var width: Int
    }

    static let cases: [Case] = [
        Case(name: "basic-avgpool-16/32/64", architecture: Architecture(
            inChannels: 1, numClasses: 10, stemWidth: 16,
            stages: [.init(blocks: 2, width: 16, stride: 1), .init(blocks: 2, width: 32, stride: 2), .init(blocks: 2, width: 64, stride: 2)]),
            height: 12, width: 12),
        Case(name: "basic-subsample-both-odd", architecture: Architecture(
            inChannels: 3, numClasses: 7, stemWidth: 4,
            stages: [.init(blocks: 2, width: 4, stride: 1), .init(blocks: 2, width: 10, stride: 2), .init(blocks: 1, width: 20, stride: 2)],
            shortcut: .subsampleThenPad, channelPadding: .both, convBias: false),
            height: 13, width: 11),
        Case(name: "basic-projection", architecture: Architecture(
            inChannels: 2, numClasses: 5, stemWidth: 6,
            stages: [.init(blocks: 2, width: 6, stride: 1), .init(blocks: 1, width: 12, stride: 1), .init(blocks: 2, width: 24, stride: 2)],
            shortcut: .projection),
            height: 10, width: 10),
        Case(name: "preact-avgpool", architecture: Architecture(
            block: .preact, inChannels: 1, numClasses: 10, stemWidth: 16,
            stages: [.init(blocks: 3, width: 16, stride: 1), .init(blocks: 2, width: 32, stride: 2)]),
            height: 8, width: 8),
        Case(name: "preact-projection-odd", architecture: Architecture(
            block: .preact, inChannels: 3, numClasses: 7, stemWidth: 5,
            stages: [.init(blocks: 2, width: 5, stride: 1), .init(blocks: 2, width: 12, stride: 2)],
            shortcut: .projection, convBias: false),
            height: 9, width: 9),
        // timm / torchvision layouts: 7x7 stride-2 stem, max pooling, downsample projections.
        Case(name: "imagenet-basic-16", architecture: Architecture(
            family: Architecture.imageNetFamily, inChannels: 3, numClasses: 10, stemWidth: 16,
            stages: [.init(blocks: 2, width: 16, stride: 1), .init(blocks: 1, width: 32, stride: 2), .init(blocks: 1, width: 48, stride: 2)],
            shortcut: .projection, convBias: false),
            height: 23, width: 17),
        Case(name: "imagenet-bottleneck-odd", architecture: Architecture(
            family: Architecture.imageNetFamily, block: .bottleneck, inChannels: 3, numClasses: 6, stemWidth: 6,
            stages: [.init(blocks: 2, width: 3, stride: 1), .init(blocks: 2, width: 5, stride: 2), .init(blocks: 1, width: 4, stride: 2)],
            shortcut: .projection, convBias: false),
            height: 20, width: 26),
        // timm's resnet*d: deep stem, average-pool projections with windows cut by odd edges.
        Case(name: "imagenet-deep-avgdown-odd", architecture: Architecture(
            family: Architecture.imageNetFamily, inChannels: 3, numClasses: 5, stemWidth: 5,
            stages: [.init(blocks: 1, width: 10, stride: 1), .init(blocks: 2, width: 6, stride: 2), .init(blocks: 1, width: 12, stride: 2)],
            shortcut: .projection, convBias: false, stem: .deep, downsample: .avg),
            height: 27, width: 21),
    ]

    func testFusedEngineMatchesReferenceOnRandomNetworksAndGates() throws {
        XCTAssertTrue(Evaluator.isFastEngineAvailable, "oneDNN did not start: the fast backend would only rerun the reference")
        var random = SplitMix(seed: 20)
        for c in Self.cases {
            let network = Network(checkpoint: Self.randomCheckpoint(c.architecture, &random))
            // 37 images: chunks of the fused engine split unevenly, pieces of odd sizes.
            let batch = Self.randomBatch(count: 37, channels: c.architecture.inChannels, height: c.height, width: c.width, &random)
            let L = network.blockCount
            var patterns: [(String, Gates)] = [("all-on", .allOn)]
            patterns.append(("scaled", .shared((0..<L).map { _ in Float(random.uniform(0.2, 1.8)) })))
            patterns.append(("dropped", .shared((0..<L).map { $0 % 2 == 0 ? 0 : 1 })))
            patterns.append(("all-off", .shared([Float](repeating: 0, count: L))))
            patterns.append(("per-example", .perExample((0..<batch.count).map { _ in
                (0..<L).map { _ in random.uniform(0, 1) < 0.4 ? 0 : (random.uniform(0, 1) < 0.5 ? 1 : 1.6) }
            })))
            patterns.append(("per-example-one-row-differs", .perExample((0..<batch.count).map { n in
                (0..<L).map { n == 5 ? ($0 % 2 == 0 ? 0 : 2) : 1 }
            })))
            for (name, gates) in patterns {
                for threads in [1, 2] {
                    let fast = try Evaluator(network: network, threads: threads, backend: .fast).logits(batch, gates: gates)
                    let reference = try Evaluator(network: network, threads: threads, backend: .reference).logits(batch, gates: gates)
                    assertLogits(fast, match: reference.scalars, classes: c.architecture.numClasses,
                                 "\(c.name)/\(name)/threads \(threads)")
                }
            }
            if let group = network.swappableGroups.first(where: { $0.count >= 2 }) {
                var order = Array(1...L)
                order.swapAt(group[0] - 1, group[1] - 1)
                let reordered = try network.reordered(order)
                let gates = Gates.shared((0..<L).map { $0 == 1 ? 0 : 0.7 })
                let fast = try Evaluator(network: reordered, backend: .fast).logits(batch, gates: gates)
                let reference = try Evaluator(network: reordered, backend: .reference).logits(batch, gates: gates)
                assertLogits(fast, match: reference.scalars, classes: c.architecture.numClasses, "\(c.name)/reordered")
            }
        }
    }

    func testConfigurationsSharePrefixesAndMatchIndependentPasses() throws {
        var random = SplitMix(seed: 21)
        for c in [Self.cases[0], Self.cases[2], Self.cases[4], Self.cases[6]] {
            let network = Network(checkpoint: Self.randomCheckpoint(c.architecture, &random))
            let batch = Self.randomBatch(count: 21, channels: c.architecture.inChannels, height: c.height, width: c.width, &random)
            let L = network.blockCount
            let allOn = [Float](repeating: 1, count: L)
            // Single-block lesions, a duplicate, scaled gates and a random mask: prefixes of every depth.
            var configurations = [allOn] + (0..<L).map { l in allOn.enumerated().map { $0.offset == l ? 0 : 1 } }
            configurations.append(allOn)
            configurations.append((0..<L).map { Float($0 + 1) / Float(L) })
            configurations.append((0..<L).map { _ in random.uniform(0, 1) < 0.5 ? 0 : 1 })
            let fast = try Evaluator(network: network, threads: 2, backend: .fast).logits(batch, configurations: configurations)
            let reference = Evaluator(network: network, threads: 2, backend: .reference)
            XCTAssertEqual(fast.count, configurations.count)
            for (i, gates) in configurations.enumerated() {
                let expected = try reference.logits(batch, gates: .shared(gates))
                assertLogits(fast[i], match: expected.scalars, classes: c.architecture.numClasses, "\(c.name)/configuration \(i)")
                XCTAssertEqual(fast[i].shape, [batch.count, c.architecture.numClasses])
            }
        }
    }

    func testEmptyInputsAndBadGatesBehaveAsTheReference() throws {
        var random = SplitMix(seed: 22)
        let c = Self.cases[0]
        let network = Network(checkpoint: Self.randomCheckpoint(c.architecture, &random))
        let evaluator = Evaluator(network: network, backend: .fast)
        XCTAssertEqual(evaluator.backend, .fast)
        let empty = ImageBatch(count: 0, channels: 1, height: c.height, width: c.width, pixels: [])
        XCTAssertEqual(try evaluator.logits(empty).shape, [0, 10])
        XCTAssertEqual(try evaluator.logits(empty, configurations: [[Float](repeating: 1, count: 6)]).map(\.shape), [[0, 10]])
        let batch = Self.randomBatch(count: 3, channels: 1, height: c.height, width: c.width, &random)
        XCTAssertEqual(try evaluator.logits(batch, configurations: []).count, 0)
        XCTAssertThrowsError(try evaluator.logits(batch, configurations: [[1, 1]]))
        XCTAssertThrowsError(try evaluator.logits(batch, gates: .perExample([[Float](repeating: 1, count: 6)])))
    }

    // MARK: Random networks

    static func randomCheckpoint(_ architecture: Architecture, _ random: inout SplitMix) -> Checkpoint {
        var tensors: [String: Tensor] = [:]
        for (key, shape) in architecture.expectedTensors {
            let count = shape.reduce(1, *)
            let values: [Float]
            if key.hasSuffix("running_var") {
                values = (0..<count).map { _ in random.uniform(0.5, 1.5) }
            } else if key.hasSuffix("running_mean") || key.hasSuffix(".bias") {
                values = (0..<count).map { _ in random.uniform(-0.2, 0.2) }
            } else if shape.count == 1 {  // batch-norm weight
                values = (0..<count).map { _ in random.uniform(0.5, 1.2) }
            } else {
                let fanIn = shape.dropFirst().reduce(1, *)
                let bound = Float(1.2 / Double(fanIn).squareRoot())
                values = (0..<count).map { _ in random.uniform(-bound, bound) }
            }
            tensors[key] = Tensor(shape: shape, scalars: values)
        }
        return Checkpoint(path: "random", architecture: architecture, training: nil, tensors: tensors)
    }

    static func randomBatch(count: Int, channels: Int, height: Int, width: Int, _ random: inout SplitMix) -> ImageBatch {
        ImageBatch(count: count, channels: channels, height: height, width: width,
                   pixels: (0..<(count * channels * height * width)).map { _ in random.uniform(-2, 2) })
    }
}

/// A small seeded generator (SplitMix64) for reproducible random networks.
struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }
}
