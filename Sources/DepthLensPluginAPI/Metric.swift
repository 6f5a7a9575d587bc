import Foundation

/// The predictions of one batch as metrics see them: M members' logits for N examples
/// and C classes, the labels, and optionally the full network's logits (all blocks on).
/// Probabilities are derived on demand in double precision and cached.
public final class PredictionBatch {
    public let classes: Int
    public let labels: [Int]
    /// M arrays of N x C logits, row-major.
    public let memberLogits: [[Float]]
    /// N x C logits of the reference network, when the analysis provides them: the
    /// deterministic network under the checkpoint's test-time rule.
    public let referenceLogits: [Float]?

    private var logProbabilityCache: [Int: [Double]] = [:]
    private var meanCache: [Double]?
    private var logMeanCache: [Double]?

    public init(classes: Int, labels: [Int], memberLogits: [[Float]], referenceLogits: [Float]? = nil) {
        precondition(memberLogits.allSatisfy { $0.count == labels.count * classes }, "member logits do not match N x C")
        self.classes = classes
        self.labels = labels
        self.memberLogits = memberLogits
        self.referenceLogits = referenceLogits
    }

    /// N, the number of examples.
    public var count: Int { labels.count }
    /// M, the number of members.
    public var memberCount: Int { memberLogits.count }

    /// log softmax of member `m`, N x C.
    public func logProbabilities(member m: Int) -> [Double] {
        if let cached = logProbabilityCache[m] { return cached }
        let result = logSoftmax(memberLogits[m], classes: classes)
        logProbabilityCache[m] = result
        return result
    }

    /// softmax of member `m`, N x C.
    public func probabilities(member m: Int) -> [Double] { logProbabilities(member: m).map { exp($0) } }

    /// The ensemble's predictive distribution p = (1/M) sum_m softmax(logits_m), N x C.
    public var meanProbabilities: [Double] {
        if let meanCache { return meanCache }
        var mean = [Double](repeating: 0, count: count * classes)
        for m in 0..<memberCount {
            for (i, value) in logProbabilities(member: m).enumerated() { mean[i] += exp(value) }
        }
        let result = mean.map { $0 / Double(memberCount) }
        meanCache = result
        return result
    }

    /// log p of the ensemble, computed as logsumexp_m(log p_m) - log M for stability.
    public var logMeanProbabilities: [Double] {
        if let logMeanCache { return logMeanCache }
        let members = (0..<memberCount).map { logProbabilities(member: $0) }
        var result = [Double](repeating: 0, count: count * classes)
        for i in 0..<result.count {
            let maximum = members.reduce(-Double.infinity) { max($0, $1[i]) }
            let sum = members.reduce(0.0) { $0 + exp($1[i] - maximum) }
            result[i] = maximum + log(sum) - log(Double(memberCount))
        }
        logMeanCache = result
        return result
    }

    /// log softmax of the reference network, when there is one.
    public var referenceLogProbabilities: [Double]? {
        referenceLogits.map { logSoftmax($0, classes: classes) }
    }

    /// A batch holding only member `m` (what per-member metrics are given).
    public func member(_ m: Int) -> PredictionBatch {
        PredictionBatch(classes: classes, labels: labels, memberLogits: [memberLogits[m]], referenceLogits: referenceLogits)
    }
}

/// Row-wise log softmax of N x C logits, in double precision.
public func logSoftmax(_ logits: [Float], classes: Int) -> [Double] {
    var out = [Double](repeating: 0, count: logits.count)
    for row in 0..<(logits.count / classes) {
        let base = row * classes
        var maximum = -Double.infinity
        for c in 0..<classes { maximum = max(maximum, Double(logits[base + c])) }
        var sum = 0.0
        for c in 0..<classes { sum += exp(Double(logits[base + c]) - maximum) }
        let logSum = maximum + log(sum)
        for c in 0..<classes { out[base + c] = Double(logits[base + c]) - logSum }
    }
    return out
}

/// One named number a metric reports, such as `ece` = 0.0213.
public struct MetricResult: Sendable, Equatable {
    public var name: String
    public var value: Double

    public init(_ name: String, _ value: Double) {
        self.name = name
        self.value = value
    }
}

/// The running state of one metric over a stream of batches. Memory must not grow with
/// the number of examples unless the metric inherently needs them all (such as AURC).
public protocol MetricAccumulator: AnyObject {
    /// Takes one batch.
    func add(_ batch: PredictionBatch)
    /// The metric's values over every batch so far.
    func results() -> [MetricResult]
    /// Why the metric could not take a batch, if it could not (a loaded plugin's error);
    /// analyses check it and stop with this message. Nil by default.
    var failure: String? { get }
}

extension MetricAccumulator {
    public var failure: String? { nil }
}

/// What a metric is a function of.
public enum MetricScope: String, Sendable {
    /// A function of one predictive distribution: it reads the batch's ensemble mean
    /// (``PredictionBatch/meanProbabilities`` or ``PredictionBatch/logMeanProbabilities``),
    /// which for a batch of one member is that member. Analyses apply it to each member
    /// (``PredictionBatch/member(_:)``) and to the ensemble. Accuracy, NLL, Brier, ECE.
    case member
    /// A function of the members jointly, meaningful from two members on: Gibbs NLL,
    /// member-averaged Brier, mutual information, disagreement.
    case ensemble
}

/// Names a metric, documents it, and makes fresh accumulators from its arguments.
public struct MetricDescriptor: Sendable {
    public var name: String
    public var summary: String
    public var scope: MetricScope
    public var parameters: [PluginParameter]
    public var origin: PluginOrigin
    /// Makes an accumulator; the second argument is the number of classes.
    public var make: @Sendable (PluginArguments, Int) throws -> any MetricAccumulator

    public init(name: String, summary: String, scope: MetricScope, parameters: [PluginParameter] = [],
                origin: PluginOrigin = .linked("user"),
                make: @escaping @Sendable (PluginArguments, Int) throws -> any MetricAccumulator) {
        self.name = name
        self.summary = summary
        self.scope = scope
        self.parameters = parameters
        self.origin = origin
        self.make = make
    }
}
