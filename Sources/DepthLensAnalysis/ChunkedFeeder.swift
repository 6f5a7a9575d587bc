import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// Feeds metric accumulators in fixed chunks of examples (0..<64, 64..<128, ...) whatever
/// the evaluation batch size, so that every floating-point sum a metric keeps is added in
/// the same order: the same seed gives byte-identical results for any batch size and
/// thread count.
final class ChunkedFeeder {
    static let chunk = 64

    private let classes: Int
    private let accumulators: [any MetricAccumulator]
    private var labels: [Int] = []
    private var members: [[Float]] = []
    private var reference: [Float] = []

    init(classes: Int, accumulators: [any MetricAccumulator]) {
        self.classes = classes
        self.accumulators = accumulators
    }

    /// Queues one evaluation batch: its labels, each member's logits (N x C) and the
    /// reference network's logits; feeds every complete chunk.
    func append(labels more: [Int], members memberLogits: [[Float]], reference referenceLogits: [Float]) {
        if members.isEmpty { members = memberLogits.map { _ in [] } }
        labels += more
        for m in memberLogits.indices { members[m] += memberLogits[m] }
        reference += referenceLogits
        feed(final: false)
    }

    /// Feeds what is left.
    func finish() { feed(final: true) }

    private func feed(final: Bool) {
        var start = 0
        while labels.count - start >= Self.chunk || (final && start < labels.count) {
            let end = min(labels.count, start + Self.chunk)
            let rows = (start * classes)..<(end * classes)
            let batch = PredictionBatch(classes: classes, labels: Array(labels[start..<end]),
                                        memberLogits: members.map { Array($0[rows]) }, referenceLogits: Array(reference[rows]))
            for accumulator in accumulators { accumulator.add(batch) }
            start = end
        }
        if start > 0 {
            labels.removeFirst(start)
            for m in members.indices { members[m].removeFirst(start * classes) }
            reference.removeFirst(start * classes)
        }
    }
}
