import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// Evaluates fixed sub-networks (one gate vector each, for the whole pass) over the data,
/// batch by batch, and computes member-scope metrics for each. The deterministic network
/// under the context's test-time rule (``AnalysisContext/deterministicGates``: p_l for
/// the expectation rule, 1 for the inverted one) is evaluated alongside as the reference
/// for `agreement` and any metric that reads reference logits.
public enum MemberEvaluation {
    /// Sub-networks evaluated together when the context has a ``ProgressJournal``: one unit
    /// of saved work. Fixed, so an interrupted run and its resumption cut units alike.
    public static let configurationsPerUnit = 16

    /// - Parameters:
    ///   - configurations: one gate vector per sub-network.
    ///   - network: a network to use instead of the context's (such as a reordered one),
    ///     per configuration; nil for the context's.
    /// - Returns: the metric results of each configuration, in order.
    /// - Throws: ``Interrupted`` when the context's stop request is set (with a journal; finished units are saved).
    public static func run(_ context: AnalysisContext, configurations: [[Float]],
                           networks: [Network]? = nil) throws -> [[MetricResult]] {
        try context.validateMetrics()
        let labels = try context.allLabels()
        // Without a journal there is nothing to cut into units: one pass evaluates every configuration.
        guard context.journal != nil else {
            return try evaluate(context, labels: labels, configurations: configurations, networks: networks, progress: context.progress)
        }
        let units = JournalUnits(context) { sectionKey(context, configurations: configurations, networks: networks) }
        let ranges = stride(from: 0, to: configurations.count, by: configurationsPerUnit).map {
            $0..<min(configurations.count, $0 + configurationsPerUnit)
        }
        let total = context.source.count
        var out: [[MetricResult]] = []
        for (unit, range) in ranges.enumerated() {
            out += try units.unit(unit, decode: { decode($0, count: range.count) }, encode: encode) {
                try evaluate(context, labels: labels, configurations: Array(configurations[range]),
                             networks: networks.map { Array($0[range]) },
                             progress: context.progress.map { report in { done, _ in report(unit * total + done, ranges.count * total) } })
            }
        }
        return out
    }

    private static func evaluate(_ context: AnalysisContext, labels: [Int], configurations: [[Float]], networks: [Network]?,
                                 progress: ((Int, Int) -> Void)?) throws -> [[MetricResult]] {
        let classes = context.checkpoint.architecture.numClasses
        let accumulators = try configurations.map { _ in try context.accumulators(scopes: [.member]) }
        let feeders = accumulators.map { ChunkedFeeder(classes: classes, accumulators: $0) }
        let reference = context.deterministicGates
        // Stopping between batches is worth it only when finished units are kept.
        let stream = BatchStream(context.source, batchSize: context.batchSize, labels: labels,
                                 stopRequest: context.journal == nil ? nil : context.stopRequest, progress: progress)
        // The deterministic network's logits come last, as the reference for every configuration.
        func feed(_ batch: BatchStream.Batch, _ logits: [[Float]]) {
            for i in configurations.indices {
                feeders[i].append(labels: batch.labels, members: [logits[i]], reference: logits[configurations.count])
            }
        }
        if let networks {
            try stream.forEach { batch in
                let images = try batch.images()
                let referenceLogits = try context.evaluator.logits(images, gates: .shared(reference)).scalars
                let logits = try zip(networks, configurations).map {
                    try context.evaluator.with(network: $0).logits(images, gates: .shared($1)).scalars
                }
                feed(batch, logits + [referenceLogits])
            }
        } else {
            try stream.logits(context.evaluator, configurations: configurations + [reference], feed)
        }
        feeders.forEach { $0.finish() }
        return try accumulators.map { try results(of: $0) }
    }

    /// Names what is evaluated: gates, block orders, data, metrics and rule, so a unit is
    /// reused only for the very same work.
    static func sectionKey(_ context: AnalysisContext, configurations: [[Float]], networks: [Network]?) -> String {
        var parts: [[UInt8]] = [Array("member-evaluation".utf8), Array(context.source.name.utf8),
                                Array("\(context.source.count)".utf8), Array(context.metrics.joined(separator: "\u{1}").utf8)]
        // The reference network's gates, then every configuration's.
        for gates in [context.deterministicGates] + configurations { parts.append(gates.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }) }
        for network in networks ?? [] { parts.append(Array(network.blockOrder.map(String.init).joined(separator: ",").utf8)) }
        return ProgressJournal.digest(parts)
    }

    /// One line per configuration: name and value pairs, tab-separated, values bit-exact.
    static func encode(_ results: [[MetricResult]]) -> [String] {
        results.map { values in
            values.map { ProgressJournal.escape($0.name) + "\t" + ProgressJournal.encode($0.value) }.joined(separator: "\t")
        }
    }

    static func decode(_ payload: [String], count: Int) -> [[MetricResult]]? {
        guard payload.count == count else { return nil }
        var out: [[MetricResult]] = []
        for line in payload {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            if line.isEmpty { out.append([]); continue }
            guard fields.count % 2 == 0 else { return nil }
            var values: [MetricResult] = []
            for i in stride(from: 0, to: fields.count, by: 2) {
                guard let value = ProgressJournal.decodeDouble(fields[i + 1]) else { return nil }
                values.append(MetricResult(ProgressJournal.unescape(String(fields[i])), value))
            }
            out.append(values)
        }
        return out
    }
}
