import DepthLens

/// Top-k accuracy of the batch's predictive distribution p (the ensemble mean; for a
/// one-member batch, that member): the fraction of examples whose label is among the k
/// most probable classes.
///
/// Ties: the label counts as within the top k when fewer than k classes have a strictly
/// greater probability. A label tied with the most probable class therefore counts as
/// correct even for k = 1, where `argmax` (first maximal class) may name another class;
/// `calibration` and `aurc` use `argmax == label` instead.
///
/// Result: `accuracy` for k = 1, otherwise `top{k}_accuracy`.
enum AccuracyMetric {
    static let descriptor = MetricDescriptor(
        name: "accuracy", summary: "top-k accuracy of the predictive distribution (ties count for the label)",
        scope: .member,
        parameters: [PluginParameter("k", .integer, default: "1", help: "how many of the most probable classes may hold the label (1...C)")],
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
                var greater = 0
                for c in 0..<C where p[i * C + c] > labelProbability { greater += 1 }
                if greater < k { hits += 1 }
            }
            return [Double(hits)]
        }
    }
}
