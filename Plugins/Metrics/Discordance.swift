import DepthLensPluginAPI

/// The discordant examples of a network against the reference network (the deterministic
/// network under the test-time rule, the reference of `agreement`): `discordant_lost`
/// counts the examples the reference classifies correctly and this network does not,
/// `discordant_gained` the examples only this network classifies correctly. They are
/// McNemar's b and c: the lesion analysis tests each single lesion against the full
/// network from them. Counts, not fractions. "Correct" is `argmax == label` with the
/// first maximal class, as `accuracy`; the reference's argmax is taken on its logits.
/// NaN when a batch comes without reference logits, and before any example (as every metric).
final class DiscordanceMetric: MetricAccumulator {
    static let descriptor = MetricDescriptor(
        name: "discordance", summary: "examples only the deterministic network (discordant_lost) or only this network (discordant_gained) classifies correctly: McNemar's counts",
        scope: .member, origin: .builtIn
    ) { _, classes in DiscordanceMetric(classes: classes) }

    private let classes: Int
    private var lost = 0
    private var gained = 0
    private var count = 0
    private var missingReference = false

    init(classes: Int) { self.classes = classes }

    func add(_ batch: PredictionBatch) {
        validate(batch, classes: classes, metric: "discordance")
        count += batch.count
        guard let reference = batch.referenceLogits else {
            missingReference = true
            return
        }
        precondition(reference.count == batch.count * classes, "discordance: reference logits do not match N x C")
        let p = batch.meanProbabilities
        for (i, label) in batch.labels.enumerated() {
            // A NaN probability never counts as correct, as in `accuracy`.
            let correct = !p[i * classes + label].isNaN && argmax(p, row: i, classes: classes) == label
            let referenceCorrect = argmax(reference, row: i, classes: classes) == label
            if referenceCorrect && !correct { lost += 1 }
            if correct && !referenceCorrect { gained += 1 }
        }
    }

    func results() -> [MetricResult] {
        let undefined = missingReference || count == 0
        return [MetricResult("discordant_lost", undefined ? .nan : Double(lost)),
                MetricResult("discordant_gained", undefined ? .nan : Double(gained))]
    }
}
