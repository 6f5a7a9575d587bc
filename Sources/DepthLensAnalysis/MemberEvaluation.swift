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
    /// Sub-networks evaluated together (sharing the passes over the data and, in the fused
    /// engine, their common prefixes) when the context has a ``ProgressJournal``; each is
    /// saved as a unit of its own, so shards and resumed runs may group them differently and
    /// still compute the same numbers.
    public static let configurationsPerUnit = 16

    /// - Parameters:
    ///   - configurations: one gate vector per sub-network.
    ///   - network: a network to use instead of the context's (such as a reordered one),
    ///     per configuration; nil for the context's.
    /// - Returns: the metric results of each configuration, in order; with a partial
    ///   ``AnalysisContext/scope`` (a plan, a shard), empty for the configurations this run
    ///   does not compute.
    /// - Throws: ``Interrupted`` when the context's stop request is set (with a journal; finished units are saved).
    public static func run(_ context: AnalysisContext, configurations: [[Float]],
                           networks: [Network]? = nil) throws -> [[MetricResult]] {
        try context.validateMetrics()
        if case .planning(let plan) = context.scope {
            try planUnits(context, plan: plan, configurations: configurations, networks: networks)
            return configurations.map { _ in [] }
        }
        let labels = try context.allLabels()
        // Without a journal there is nothing to cut into units: one pass evaluates every configuration.
        if context.journal == nil, case .everything = context.scope {
            return try evaluate(context, labels: labels, configurations: configurations, networks: networks, progress: context.progress)
        }
        let units = JournalUnits(context) { sectionKey(context, configurations: configurations, networks: networks) }
        var out = [[MetricResult]?](repeating: nil, count: configurations.count)
        for i in configurations.indices {
            if let payload = units.saved(i), let values = decode(payload, count: 1) { out[i] = values[0] }
        }
        let todo = configurations.indices.filter { out[$0] == nil && (units.owns($0) || units.isReplay) }
        let groups = stride(from: 0, to: todo.count, by: configurationsPerUnit).map {
            Array(todo[$0..<min(todo.count, $0 + configurationsPerUnit)])
        }
        let total = context.source.count
        for (g, group) in groups.enumerated() {
            try units.willCompute(group)
            let values = try evaluate(context, labels: labels, configurations: group.map { configurations[$0] },
                                      networks: networks.map { n in group.map { n[$0] } },
                                      progress: context.progress.map { report in { done, _ in report(g * total + done, groups.count * total) } })
            try units.record(zip(group, values).map { ($0, encode([$1])) })
            for (i, value) in zip(group, values) { out[i] = value }
        }
        return out.map { $0 ?? [] }
    }

    /// Records the configurations as units of `plan`: each costs the units from its first
    /// difference with the reference network on (its prefix is shared), or the whole pass
    /// when it has a network of its own (reordered, recalibrated: evaluated alone); the
    /// reference network is the section's overhead.
    static func planUnits(_ context: AnalysisContext, plan: WorkPlan, configurations: [[Float]], networks: [Network]?) throws {
        let cost = try context.computeCost()
        let images = Double(context.source.count)
        let reference = context.deterministicGates
        let extra = plan.pendingCostPerSubNetwork
        plan.pendingCostPerSubNetwork = 0
        let units = JournalUnits(context) { sectionKey(context, configurations: configurations, networks: networks) }
        let planned = configurations.indices.map { i -> WorkPlan.Unit in
            let perImage = networks != nil ? cost.network(gates: configurations[i]) : cost.suffix(gates: configurations[i], after: reference)
            return WorkPlan.Unit(key: units.key(i), cost: images * perImage + extra)
        }
        plan.add(.init(key: units.section, kind: .subNetworks, units: planned, subNetworks: configurations.count,
                       images: context.source.count, overhead: images * cost.network(gates: reference)))
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
