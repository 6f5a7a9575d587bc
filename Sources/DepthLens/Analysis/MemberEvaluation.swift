/// Evaluates fixed sub-networks (one gate vector each, for the whole pass) over the data,
/// batch by batch, and computes member-scope metrics for each. The full network (all
/// blocks on) is evaluated alongside as the reference for `agreement`.
public enum MemberEvaluation {
    /// - Parameters:
    ///   - configurations: one gate vector per sub-network.
    ///   - network: a network to use instead of the context's (such as a reordered one),
    ///     per configuration; nil for the context's.
    /// - Returns: the metric results of each configuration, in order.
    public static func run(_ context: AnalysisContext, configurations: [[Float]],
                           networks: [Network]? = nil) throws -> [[MetricResult]] {
        try context.validateMetrics()
        let labels = try context.allLabels()
        let classes = context.checkpoint.architecture.numClasses
        let accumulators = try configurations.map { _ in try context.accumulators(scopes: [.member]) }
        let feeders = accumulators.map { ChunkedFeeder(classes: classes, accumulators: $0) }
        let reference = [Float](repeating: 1, count: context.blockCount)
        let total = context.source.count
        for start in stride(from: 0, to: total, by: context.batchSize) {
            let range = start..<min(total, start + context.batchSize)
            let batch = try context.source.batch(range)
            var logits: [[Float]]
            if let networks {
                let referenceLogits = try context.evaluator.logits(batch, gates: .shared(reference)).scalars
                logits = try zip(networks, configurations).map {
                    try Evaluator(network: $0, threads: context.evaluator.threads).logits(batch, gates: .shared($1)).scalars
                }
                logits.append(referenceLogits)
            } else {
                logits = try context.evaluator.logits(batch, configurations: configurations + [reference]).map(\.scalars)
            }
            let batchLabels = Array(labels[range])
            for i in configurations.indices {
                feeders[i].append(labels: batchLabels, members: [logits[i]], reference: logits[configurations.count])
            }
            context.progress?(range.upperBound, total)
        }
        feeders.forEach { $0.finish() }
        return try accumulators.map { try results(of: $0) }
    }
}
