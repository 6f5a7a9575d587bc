import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// One pass over an image source in consecutive batches: images 0..<b, b..<2b, ..., the
/// last batch holding what is left. Predictions, summaries, analyses, ensembles,
/// recalibration and pruning all walk their data through this one loop, so batches are
/// cut, stop requests honoured and progress reported the same way everywhere.
public struct BatchStream {
    /// One batch of the pass.
    public struct Batch {
        /// Position in the pass: 0, 1, ...
        public let index: Int
        /// The images of the source it holds.
        public let range: Range<Int>
        /// Their labels when the stream was given the source's labels; otherwise empty.
        public let labels: [Int]
        let source: any ImageSource

        /// Reads the batch's images. Read on demand, because a batch replayed from a
        /// ``ProgressJournal`` needs none.
        public func images() throws -> ImageBatch { try source.batch(range) }
    }

    public let source: any ImageSource
    public let batchSize: Int
    /// Labels of every image of the source, handed out batch by batch; nil for none.
    public var labels: [Int]?
    /// The pass ends at the first batch with fewer images (only the last can have fewer,
    /// unless `batchSize` is smaller): batch-norm recalibration needs 2, since one image
    /// has no variance.
    public var minimumCount = 1
    /// Polled before each batch: once set, the pass throws ``Interrupted`` before reading it.
    public var stopRequest: StopRequest?
    /// Called after each batch with (images done, images in the source).
    public var progress: ((Int, Int) -> Void)?

    /// - Parameter labels: every label of `source` (``Batch/labels`` slices them), or nil.
    public init(_ source: any ImageSource, batchSize: Int, labels: [Int]? = nil,
                stopRequest: StopRequest? = nil, progress: ((Int, Int) -> Void)? = nil) {
        precondition(batchSize > 0, "the batch size must be positive")
        precondition(labels.map { $0.count == source.count } ?? true, "one label per image")
        self.source = source
        self.batchSize = batchSize
        self.labels = labels
        self.stopRequest = stopRequest
        self.progress = progress
    }

    /// The image ranges of the batches, in order.
    public var ranges: [Range<Int>] {
        var out: [Range<Int>] = []
        for start in stride(from: 0, to: source.count, by: batchSize) {
            let range = start..<min(source.count, start + batchSize)
            guard range.count >= minimumCount else { break }
            out.append(range)
        }
        return out
    }

    /// Hands every batch to `body`, in order.
    /// - Throws: ``Interrupted`` (before a batch) on a stop request, and what `body` throws;
    ///   an ``EvaluationError/nonFiniteLogits(_:)`` from `body` is given the source's name
    ///   and the image's index in it.
    public func forEach(_ body: (Batch) throws -> Void) throws {
        for (index, range) in ranges.enumerated() {
            try stopRequest?.check()
            do {
                try body(Batch(index: index, range: range, labels: labels.map { Array($0[range]) } ?? [], source: source))
            } catch EvaluationError.nonFiniteLogits(var details) where details.source == nil {
                // Name the image by its index in the data set (past --offset) and the set.
                details.image += range.lowerBound + ((source as? SubsetSource)?.offset ?? 0)
                details.source = source.name
                throw EvaluationError.nonFiniteLogits(details)
            }
            progress?(range.upperBound, source.count)
        }
    }

    /// Evaluates every batch under `configurations` (one shared gate vector each) through
    /// ``Evaluator/logits(_:configurations:)``, and hands `consume` the logits of each
    /// configuration (N x classes, row-major), in the order given.
    public func logits(_ evaluator: Evaluator, configurations: [[Float]],
                       _ consume: (Batch, [[Float]]) throws -> Void) throws {
        try forEach { batch in
            try consume(batch, try evaluator.logits(try batch.images(), configurations: configurations).map(\.scalars))
        }
    }

    /// Evaluates every batch under one gate pattern through ``Evaluator/logits(_:gates:)``.
    public func logits(_ evaluator: Evaluator, gates: Gates, _ consume: (Batch, [Float]) throws -> Void) throws {
        try forEach { batch in try consume(batch, try evaluator.logits(try batch.images(), gates: gates).scalars) }
    }
}
