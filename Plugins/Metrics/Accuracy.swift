import DepthLensPluginAPI

/// Top-k accuracy of the batch's predictive distribution p (the ensemble mean; for a
/// one-member batch, that member): the fraction of examples whose label is among the k
/// most probable classes.
///
/// Ties are broken by class index, as `argmax` breaks them: the label's rank is the
/// number of classes with a greater probability plus the number with an equal one and a
/// smaller index, and it counts when that rank is below k. For k = 1 this is exactly
/// `argmax == label` (the first maximal class), the rule `calibration`, `aurc` and
/// `depthlens eval` use.
///
/// A NaN probability of the label counts as a miss.
///
/// Result: `accuracy` for k = 1, otherwise `top{k}_accuracy`.
enum AccuracyMetric {
    static let descriptor = MetricDescriptor(
        name: "accuracy", summary: "top-k accuracy of the predictive distribution (ties broken by class index, as argmax)",
        scope: .member,
        parameters: [PluginParameter("k", .integer, default: "1", help: "how many of the most probable classes may hold the label (1...C); the result is accuracy for k = 1, top{k}_accuracy otherwise")],
        origin: .builtIn
    ) { arguments, classes in
        let k = try arguments.integer("k", atLeast: 1)
        guard k <= classes else {
            throw PluginError(spec: arguments.spec, message: "'k' must be at most the number of classes (\(classes)), found \(k)")
        }
        return ExampleMeanAccumulator(metric: "accuracy", names: [k == 1 ? "accuracy" : "top\(k)_accuracy"], classes: classes) { batch in
            let p = batch.meanProbabilities
            let C = batch.classes
            var hits = 0
            for (i, label) in batch.labels.enumerated() {
                let labelProbability = p[i * C + label]
                // A NaN probability (logits that were not finite) is never a hit: every
                // comparison with it is false, which would give rank 0.
                guard !labelProbability.isNaN else { continue }
                var rank = 0
                for c in 0..<C where p[i * C + c] > labelProbability || (p[i * C + c] == labelProbability && c < label) {
                    rank += 1
                }
                if rank < k { hits += 1 }
            }
            return [Double(hits)]
        }
    }
}
