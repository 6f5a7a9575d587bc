import XCTest
import DepthLens

/// The fused engine's attention core (oneDNN batched matmuls and softmax on token-major
/// q, k, v copied out of the blocked `qkv` activation) against the reference engine's
/// plain loop, on random vision transformers chosen for the layouts the copy must get
/// right: head widths that are and are not multiples of the channel block, a width whose
/// q, k and v boundaries fall inside a block of 8 (padded channels), many tokens, and
/// batches that split into pieces of 1, 2, 4, 8 and 16 images. Max |logit difference|
/// <= 1e-4 and the same argmax, under shared, scaled and per-example branch gates.
final class AttentionCoreTests: XCTestCase {
    struct Case {
        var name: String
        var vit: VisionTransformerSpec
        var channels: Int
    }

    static let cases: [Case] = [
        // d = 32: every head is two whole blocks of 16.
        Case(name: "width-64-heads-2-token", vit: VisionTransformerSpec(
            imageSize: [16, 16], patchSize: 4, embedDim: 64, depth: 2, numHeads: 2, mlpHidden: 128), channels: 1),
        // d = 12: heads share blocks of 16; no class token, average pooling, layer scale.
        Case(name: "width-48-heads-4-avg-ls", vit: VisionTransformerSpec(
            imageSize: [20, 20], patchSize: 4, embedDim: 48, depth: 2, numHeads: 4, mlpHidden: 96,
            classToken: false, globalPool: .avg, layerScale: true), channels: 3),
        // C = 20: blocks of 8, q/k and k/v boundaries inside a block, 3C = 60 padded to 64.
        Case(name: "width-20-heads-2-straddling", vit: VisionTransformerSpec(
            imageSize: [12, 12], patchSize: 2, embedDim: 20, depth: 3, numHeads: 2, mlpHidden: 40, qkvBias: false),
            channels: 1),
    ]

    func testAttentionCoreMatchesTheReferenceEngine() throws {
        var random = SplitMix(seed: 2020)
        for c in Self.cases {
            let architecture = Architecture(vit: c.vit, inChannels: c.channels, numClasses: 7)
            let network = Network(checkpoint: FusedEngineTests.randomCheckpoint(architecture, &random))
            // 31 images: chunks of 16 then 15 = 8 + 4 + 2 + 1 images.
            let batch = FusedEngineTests.randomBatch(count: 31, channels: c.channels, height: c.vit.imageSize[0],
                                                     width: c.vit.imageSize[1], &random)
            // Otherwise the fast backend would quietly rerun the reference.
            XCTAssertNil(Evaluator(network: network, backend: .fast).fastEngineRefusal, c.name)
            let units = 2 * c.vit.depth
            let patterns: [(String, Gates)] = [
                ("all-on", .allOn),
                ("scaled", .shared((0..<units).map { _ in random.uniform(0.3, 1.7) })),
                ("attention-dropped", .shared((0..<units).map { $0 % 2 == 0 ? 0 : 1 })),
                ("per-example", .perExample((0..<batch.count).map { _ in
                    (0..<units).map { _ in random.uniform(0, 1) < 0.4 ? 0 : 1 }
                })),
            ]
            for (name, gates) in patterns {
                let reference = try Evaluator(network: network, threads: 2, backend: .reference, unit: .branch)
                    .logits(batch, gates: gates)
                for threads in [1, 2] {
                    let fast = try Evaluator(network: network, threads: threads, backend: .fast, unit: .branch)
                        .logits(batch, gates: gates)
                    assertLogits(fast, match: reference.scalars, classes: 7, "\(c.name)/\(name)/threads \(threads)")
                }
            }
        }
    }
}
