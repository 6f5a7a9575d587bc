import DepthLensPluginAPI

/// Top-k error of the predictive distribution: the fraction of examples whose label is
/// not among the k most probable classes, 1 - `accuracy:k=K` exactly (ties are broken by
/// class index, as argmax breaks them). A member-scope metric: it reads the batch's
/// ensemble mean, which for a one-member batch is that member.
///
/// Result: `error` for k = 1, otherwise `top{k}_error`.
public final class ErrorMetric: MetricAccumulator {
    private let k: Int
    private let classes: Int
    private var misses = 0
    private var count = 0

    public init(k: Int, classes: Int) {
        self.k = k
        self.classes = classes
    }

    public static let descriptor = MetricDescriptor(
        name: "error", summary: "top-k error of the predictive distribution, 1 - accuracy",
        scope: .member,
        parameters: [PluginParameter("k", .integer, default: "1", help: "how many of the most probable classes may hold the label (1...C)")],
        origin: .linked("MyPlugins")
    ) { arguments, classes in
        let k = try arguments.integer("k", atLeast: 1)
        guard k <= classes else {
            throw PluginError(spec: arguments.spec, message: "'k' must be at most the number of classes (\(classes)), found \(k)")
        }
        return ErrorMetric(k: k, classes: classes)
    }

    public func add(_ batch: PredictionBatch) {
        precondition(batch.classes == classes, "error: made for \(classes) classes, given a batch of \(batch.classes)")
        let p = batch.meanProbabilities
        for (i, label) in batch.labels.enumerated() {
            let row = i * classes
            let labelProbability = p[row + label]
            var rank = 0
            for c in 0..<classes where p[row + c] > labelProbability || (p[row + c] == labelProbability && c < label) {
                rank += 1
            }
            if rank >= k { misses += 1 }
        }
        count += batch.count
    }

    public func results() -> [MetricResult] {
        [MetricResult(k == 1 ? "error" : "top\(k)_error", count == 0 ? .nan : Double(misses) / Double(count))]
    }
}
