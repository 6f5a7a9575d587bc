import DepthLensPluginAPI
import Foundation

/// Selective prediction with the predictive distribution's confidence max_c p_c and the
/// 0/1 error (argmax, the first maximal class, != label).
///
/// Examples are sorted by descending confidence with a stable sort (ties keep data-set
/// order); the risk at coverage k/N is the number of errors among the first k divided by
/// k, and `aurc` is the mean of that risk over k = 1...N (Geifman et al. 2019). `eaurc`
/// is aurc minus the AURC of an optimal ranking at the same overall error rate r:
/// r + (1 - r) ln(1 - r), which is 0 for r = 0 and taken as its limit 1 for r = 1.
///
/// Needs every example's confidence and error: memory O(N). NaN before any example.
final class AURCMetric: MetricAccumulator {
    static let descriptor = MetricDescriptor(
        name: "aurc", summary: "area under the risk-coverage curve (aurc) and its excess over the optimum (eaurc)",
        scope: .member, origin: .builtIn
    ) { _, classes in AURCMetric(classes: classes) }

    private let classes: Int
    private var confidences: [Double] = []
    private var errors: [Bool] = []

    init(classes: Int) { self.classes = classes }

    func add(_ batch: PredictionBatch) {
        validate(batch, classes: classes, metric: "aurc")
        let p = batch.meanProbabilities
        for (i, label) in batch.labels.enumerated() {
            let (confidence, correct) = topPrediction(p, row: i, classes: classes, label: label)
            confidences.append(confidence)
            errors.append(!correct)
        }
    }

    func results() -> [MetricResult] {
        let n = confidences.count
        guard n > 0 else { return [MetricResult("aurc", .nan), MetricResult("eaurc", .nan)] }
        let order = confidences.indices.sorted { (-confidences[$0], $0) < (-confidences[$1], $1) }
        var wrong = 0, area = 0.0
        for (k, index) in order.enumerated() {
            if errors[index] { wrong += 1 }
            area += Double(wrong) / Double(k + 1)
        }
        let aurc = area / Double(n)
        let r = Double(wrong) / Double(n)
        let optimal = wrong == n ? 1 : r + (1 - r) * log1p(-r)
        return [MetricResult("aurc", aurc), MetricResult("eaurc", aurc - optimal)]
    }
}
