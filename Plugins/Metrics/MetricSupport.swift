import DepthLensPluginAPI
import Foundation

// Helpers shared by the built-in metrics. Internal: a plugin of your own can copy them.

/// The first maximal class of row `row` of an N x C row-major array, as numpy's argmax.
func argmax<T: BinaryFloatingPoint>(_ values: [T], row: Int, classes: Int) -> Int {
    let base = row * classes
    var best = 0
    for c in 1..<classes where values[base + c] > values[base + best] { best = c }
    return best
}

/// The top class of row `row` and its probability, made safe for binning and ranking: a
/// probability that is NaN (logits that were not finite) gives confidence 0 and counts as
/// wrong; others are clamped to [0, 1]. DepthLens' own evaluations refuse non-finite
/// logits before they reach a metric; this keeps a metric from trapping or miscounting
/// when a caller of the library feeds them anyway.
func topPrediction(_ p: [Double], row: Int, classes: Int, label: Int) -> (confidence: Double, correct: Bool) {
    let top = argmax(p, row: row, classes: classes)
    let confidence = p[row * classes + top]
    if confidence.isNaN { return (0, false) }
    return (min(max(confidence, 0), 1), top == label)
}

/// H = -sum_c p_c log p_c (natural log) of row `row`, from its log-probabilities, with
/// 0 log 0 = 0 (a class whose probability underflows to 0 contributes nothing).
func entropy(logProbabilities: [Double], row: Int, classes: Int) -> Double {
    var h = 0.0
    for c in 0..<classes {
        let logP = logProbabilities[row * classes + c]
        let p = exp(logP)
        if p > 0 { h -= p * logP }
    }
    return h
}

/// Checks what every accumulator assumes of a batch: the class count it was made for and
/// labels in 0..<C. Both are programming errors of the caller, so they trap.
func validate(_ batch: PredictionBatch, classes: Int, metric: String) {
    precondition(batch.classes == classes, "\(metric): made for \(classes) classes, given a batch of \(batch.classes)")
    precondition(batch.memberCount >= 1, "\(metric): a batch needs at least one member")
    precondition(batch.labels.allSatisfy { (0..<classes).contains($0) }, "\(metric): a label is outside 0..<\(classes)")
}

/// The accumulator of metrics that are means over examples of per-example values: it keeps
/// one running sum per result and the example count (memory independent of N). Each
/// result is NaN until an example has been seen.
final class ExampleMeanAccumulator: MetricAccumulator {
    private let metric: String
    private let names: [String]
    private let classes: Int
    /// The sums over one batch's examples of each result's per-example value, in `names` order.
    private let batchSums: (PredictionBatch) -> [Double]
    private var sums: [Double]
    private var count = 0

    init(metric: String, names: [String], classes: Int, batchSums: @escaping (PredictionBatch) -> [Double]) {
        self.metric = metric
        self.names = names
        self.classes = classes
        self.batchSums = batchSums
        sums = names.map { _ in 0 }
    }

    func add(_ batch: PredictionBatch) {
        validate(batch, classes: classes, metric: metric)
        let values = batchSums(batch)
        precondition(values.count == names.count)
        for (i, value) in values.enumerated() { sums[i] += value }
        count += batch.count
    }

    func results() -> [MetricResult] {
        zip(names, sums).map { MetricResult($0, $1 / Double(count)) }
    }
}
