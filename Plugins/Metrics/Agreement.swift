import DepthLensPluginAPI

/// Agreement with the reference network: the fraction of examples where the predictive
/// distribution's argmax equals the argmax of the batch's reference logits (both the first
/// maximal class). Result `agreement`. The analyses pass the deterministic network under
/// the checkpoint's test-time rule as the reference (expectation: block l's residual
/// scaled by p_l; inverted: every block on).
///
/// If any batch comes without ``PredictionBatch/referenceLogits``, the result is NaN: an
/// agreement over only part of the data would be misleading.
final class AgreementMetric: MetricAccumulator {
    static let descriptor = MetricDescriptor(
        name: "agreement", summary: "fraction of examples whose argmax matches the deterministic network's under the test-time rule (NaN without reference logits)",
        scope: .member, origin: .builtIn
    ) { _, classes in AgreementMetric(classes: classes) }

    private let classes: Int
    private var agreeing = 0
    private var count = 0
    private var missingReference = false

    init(classes: Int) { self.classes = classes }

    func add(_ batch: PredictionBatch) {
        validate(batch, classes: classes, metric: "agreement")
        count += batch.count
        guard let reference = batch.referenceLogits else {
            missingReference = true
            return
        }
        precondition(reference.count == batch.count * classes, "agreement: reference logits do not match N x C")
        let p = batch.meanProbabilities
        for i in 0..<batch.count where argmax(p, row: i, classes: classes) == argmax(reference, row: i, classes: classes) {
            agreeing += 1
        }
    }

    func results() -> [MetricResult] {
        [MetricResult("agreement", missingReference ? .nan : Double(agreeing) / Double(count))]
    }
}
