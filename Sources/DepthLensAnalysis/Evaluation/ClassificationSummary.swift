import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// Accuracy, negative log-likelihood and per-class counts of one network on a labelled
/// data set, accumulated batch by batch.
public struct ClassificationSummary: Sendable, Equatable {
    /// Examples and correct top-1 predictions of one class.
    public struct ClassTally: Sendable, Equatable {
        public var support = 0
        public var correct = 0
        /// How often the network predicted this class.
        public var predicted = 0

        public var accuracy: Double { support == 0 ? .nan : Double(correct) / Double(support) }
    }

    public private(set) var count = 0
    public private(set) var correct = 0
    /// Sum over examples of -log softmax(logits)[label], in double precision.
    public private(set) var negativeLogLikelihoodSum = 0.0
    public private(set) var perClass: [ClassTally]

    public init(classes: Int) {
        perClass = Array(repeating: ClassTally(), count: classes)
    }

    public var accuracy: Double { count == 0 ? .nan : Double(correct) / Double(count) }
    public var negativeLogLikelihood: Double { count == 0 ? .nan : negativeLogLikelihoodSum / Double(count) }

    /// Adds a batch of logits (N x classes, row-major) with their labels; returns the
    /// predicted class of each example (the first maximum on ties, as `argmax` does).
    @discardableResult
    public mutating func add(logits: [Float], labels: [Int]) -> [Int] {
        let classes = perClass.count
        var predictions: [Int] = []
        predictions.reserveCapacity(labels.count)
        for (n, label) in labels.enumerated() {
            let row = logits[(n * classes)..<((n + 1) * classes)]
            var best = row.startIndex
            for i in row.indices where row[i] > row[best] { best = i }
            let predicted = best - row.startIndex
            let maximum = Double(row[best])
            let logSumExp = maximum + log(row.reduce(0.0) { $0 + exp(Double($1) - maximum) })
            negativeLogLikelihoodSum += logSumExp - Double(row[row.startIndex + label])
            count += 1
            perClass[label].support += 1
            perClass[predicted].predicted += 1
            if predicted == label {
                correct += 1
                perClass[label].correct += 1
            }
            predictions.append(predicted)
        }
        return predictions
    }
}

/// Streams a labelled data set through an evaluator under one gate configuration.
public enum DataSetEvaluation {
    /// Evaluates every image of `source`, `batchSize` at a time.
    /// - Parameter progress: called after each batch with (images done, total).
    /// - Returns: the summary and every prediction, in data-set order.
    /// - Throws: ``DataSetError`` when the source has no labels or a label is out of range
    ///   (checked before any computation), and evaluation errors.
    public static func run(_ evaluator: Evaluator, on source: any ImageSource, gates: Gates, batchSize: Int,
                           progress: ((Int, Int) -> Void)? = nil) throws -> (ClassificationSummary, [Int]) {
        let classes = evaluator.network.architecture.numClasses
        guard let labels = try source.labels(0..<source.count) else {
            throw DataSetError(source: source.name, message: "has no labels; evaluation needs them")
        }
        if let bad = labels.firstIndex(where: { !(0..<classes).contains($0) }) {
            throw DataSetError(source: source.name, message: "label \(labels[bad]) of image \(bad) is outside 0...\(classes - 1) (the network has \(classes) classes)")
        }
        var summary = ClassificationSummary(classes: classes)
        var predictions: [Int] = []
        try BatchStream(source, batchSize: batchSize, labels: labels, progress: progress).logits(evaluator, gates: gates) { batch, logits in
            predictions += summary.add(logits: logits, labels: batch.labels)
        }
        return (summary, predictions)
    }
}
