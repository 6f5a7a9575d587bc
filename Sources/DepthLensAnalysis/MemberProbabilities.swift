import DepthLensEngine
import DepthLensFormats
import DepthLensPluginAPI
import Foundation

/// Per-example, per-member softmax probabilities of fixed sub-networks, for tools that
/// work on them downstream (`--save-probabilities`; TorchUncertainty-style evaluation).
public struct MemberProbabilities: Sendable {
    /// Probabilities, member-major: `values[(m * images + n) * classes + c]`, float32 of
    /// the float64 softmax of each member's logits.
    public var values: [Float]
    /// The gate vector of each member, as the analyses use it.
    public var gates: [[Float]]
    public var labels: [Int]
    public var images: Int
    public var classes: Int

    /// The first `count` members of `sample` and `ensemble --granularity pass` (member m is
    /// drawn from stream m of the seed), evaluated on the context's data in one pass.
    public static func sampled(_ context: AnalysisContext, members count: Int) throws -> MemberProbabilities {
        let gates = (0..<count).map { m in
            var generator = SeededGenerator.stream(seed: context.seed, m)
            return context.sampledGates(MaskSampling.bernoulli(context.survival, using: &generator))
        }
        return try evaluate(context, gates: gates)
    }

    /// Probabilities of the sub-networks `gates` on the context's data.
    public static func evaluate(_ context: AnalysisContext, gates: [[Float]]) throws -> MemberProbabilities {
        let labels = try context.allLabels()
        let classes = context.checkpoint.architecture.numClasses, images = context.source.count
        var values = [Float](repeating: 0, count: gates.count * images * classes)
        let stream = BatchStream(context.source, batchSize: context.batchSize, labels: labels,
                                 stopRequest: context.stopRequest, progress: context.progress)
        try stream.logits(context.evaluator, configurations: gates) { batch, logits in
            for (m, z) in logits.enumerated() {
                for i in 0..<batch.labels.count {
                    let row = Array(z[(i * classes)..<((i + 1) * classes)]).map(Double.init)
                    let top = row.max() ?? 0
                    let e = row.map { exp($0 - top) }
                    let sum = e.reduce(0, +)
                    let base = (m * images + batch.range.lowerBound + i) * classes
                    for c in 0..<classes { values[base + c] = Float(e[c] / sum) }
                }
            }
        }
        return MemberProbabilities(values: values, gates: gates, labels: labels, images: images, classes: classes)
    }
}
