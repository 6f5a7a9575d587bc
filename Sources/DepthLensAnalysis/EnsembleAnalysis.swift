import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// `ensemble`: a Monte Carlo ensemble of M sub-networks drawn from the schedule, its
/// metrics as it grows (M = 1, 2, 4, ..., M), beside the deterministic network.
public enum EnsembleAnalysis {
    /// When gates are drawn.
    public enum Granularity: String, Sendable, CaseIterable {
        /// One mask per member for the whole pass: M fixed sub-networks.
        case pass
        /// A fresh mask per member for every batch of `batchSize` images (as the paper
        /// trains). Depends on the batch size by definition.
        case batch
        /// A fresh mask per member for every example (timm's drop path).
        case sample
    }

    /// 1, 2, 4, ... up to `members`, always ending at `members`.
    public static func sizes(upTo members: Int) -> [Int] {
        var sizes: [Int] = []
        var s = 1
        while s < members { sizes.append(s); s *= 2 }
        sizes.append(members)
        return sizes
    }

    /// Refuses more members than half the machine's memory holds, before anything is
    /// allocated: per member, a batch's logits (kept for the unit and handed to the
    /// growing ensembles), its gate vector, and with `sample` granularity one recorded mask
    /// per example.
    package static func checkMemory(_ context: AnalysisContext, members: Int, granularity: Granularity,
                            memory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
        let floats = 4, L = context.blockCount
        let logits = 2 * min(context.batchSize, max(context.source.count, 1)) * context.checkpoint.architecture.numClasses * floats
        let mask = L * floats + 64  // gates and the mask's name
        let masks = granularity == .sample ? context.source.count : (granularity == .batch ? 2 : 1)
        let (perMember, overflow) = (logits + mask).multipliedReportingOverflow(by: max(masks, 1))
        let bytes = overflow ? Int.max : max(perMember, 1)
        let fit = Int(min(memory / 2 / UInt64(bytes), UInt64(Int.max)))
        guard members <= fit else {
            throw EnsembleError.tooManyMembers(members, bytesPerMember: bytes, fit: fit, memory: memory)
        }
    }

    public static func run(_ context: AnalysisContext, members: Int, granularity: Granularity) throws -> ResultTable {
        guard members >= 1 else { throw EnsembleError.tooFewMembers(members) }
        try checkMemory(context, members: members, granularity: granularity)
        try context.validateMetrics()
        let labels = try context.allLabels()
        let classes = context.checkpoint.architecture.numClasses
        let sizes = Self.sizes(upTo: members)
        let growing = try sizes.map { _ in try context.accumulators(scopes: [.member, .ensemble]) }
        let deterministic = try context.accumulators(scopes: [.member])
        let growingFeeders = growing.map { ChunkedFeeder(classes: classes, accumulators: $0) }
        let deterministicFeeder = ChunkedFeeder(classes: classes, accumulators: deterministic)
        let passMasks = (0..<members).map { m -> [Float] in
            var generator = SeededGenerator.stream(seed: context.seed, m)
            return context.sampledGates(MaskSampling.bernoulli(context.survival, using: &generator))
        }
        var table = context.table()
        if granularity == .pass {
            for (m, gates) in passMasks.enumerated() { table.recordMask("member-\(m)", gates: gates) }
        }
        // Per-example gates are keyed by example index, so they do not depend on the batch size.
        func exampleGates(_ n: Int, _ m: Int) -> [Float] {
            var generator = SeededGenerator.stream(seed: context.seed, 20_000_000 + n * members + m)
            return context.sampledGates(MaskSampling.bernoulli(context.survival, using: &generator))
        }
        let total = context.source.count
        // With a journal, each batch's logits are one unit, replayed on resume.
        let units = JournalUnits(context) {
            ProgressJournal.digest([Array("ensemble-reference-deterministic-\(context.rule.rawValue)-\(granularity.rawValue)-\(members)-\(context.batchSize)-\(context.seed)".utf8),
                                    Array(context.source.name.utf8), Array("\(total)".utf8),
                                    Array(context.survival.map { "\($0)" }.joined(separator: ",").utf8)])
        }
        if case .planning(let plan) = context.scope {
            try planBatches(context, plan: plan, section: units, members: members, granularity: granularity, masks: passMasks)
            return table
        }
        // Stop requests are polled by the units, before a batch that is not replayed.
        let stream = BatchStream(context.source, batchSize: context.batchSize, labels: labels, progress: context.progress)
        try stream.forEach { batch in
            var batchMasks: [[Float]] = []
            if granularity == .batch {
                batchMasks = (0..<members).map { m -> [Float] in
                    var generator = SeededGenerator.stream(seed: context.seed, 10_000_000 + batch.index * members + m)
                    return context.sampledGates(MaskSampling.bernoulli(context.survival, using: &generator))
                }
                for (m, gates) in batchMasks.enumerated() { table.recordMask("member-\(m)-batch-\(batch.index)", gates: gates) }
            }
            // The members' logits, then the deterministic network's (the reference of every metric that reads one).
            // Another shard's batch: not computed here, and this run's table is not a result.
            guard let logits = try units.unit(batch.index, decode: { payload -> [[Float]]? in
                let decoded = payload.compactMap { ProgressJournal.decodeFloats($0[...]) }
                return payload.count == members + 1 && decoded.count == members + 1 ? decoded : nil
            }, encode: { $0.map(ProgressJournal.encode) }, compute: {
                let images = try batch.images()
                let fixed = [context.deterministicGates]
                switch granularity {
                case .pass:
                    return try context.evaluator.logits(images, configurations: passMasks + fixed).map(\.scalars)
                case .batch:
                    return try context.evaluator.logits(images, configurations: batchMasks).map(\.scalars)
                        + context.evaluator.logits(images, configurations: fixed).map(\.scalars)
                case .sample:
                    let memberLogits = try (0..<members).map { m in
                        try context.evaluator.logits(images, gates: .perExample(batch.range.map { exampleGates($0, m) })).scalars
                    }
                    return try memberLogits + context.evaluator.logits(images, configurations: fixed).map(\.scalars)
                }
            }) else { return }
            let (memberLogits, deterministicLogits) = (Array(logits.prefix(members)), logits[members])
            deterministicFeeder.append(labels: batch.labels, members: [deterministicLogits], reference: deterministicLogits)
            for (i, size) in sizes.enumerated() {
                growingFeeders[i].append(labels: batch.labels, members: Array(memberLogits.prefix(size)), reference: deterministicLogits)
            }
        }
        if context.scope.isPartial { return table }
        if granularity == .sample {  // recorded in one order for any batch size
            for m in 0..<members { for n in 0..<total { table.recordMask("member-\(m)-example-\(n)", gates: exampleGates(n, m)) } }
        }
        deterministicFeeder.finish()
        growingFeeders.forEach { $0.finish() }
        let reference = Experiment.deterministic(rule: context.rule)
        table.recordMask(reference.name, gates: context.deterministicGates)
        for value in try results(of: deterministic) {
            table.append(ResultRow(analysis: "ensemble", experiment: reference, member: .deterministic, metric: value.name,
                                   value: value.value, mask: reference.name))
        }
        for (i, size) in sizes.enumerated() {
            for value in try results(of: growing[i]) {
                table.append(ResultRow(analysis: "ensemble", experiment: .ensemble(granularity: granularity, members: size),
                                       member: .ensemble, k: Double(size), metric: value.name, value: value.value))
            }
        }
        return table
    }

    /// Records the batches as units of `plan`: per image, the deterministic network and each
    /// member (from its first difference with the deterministic network on for pass
    /// granularity, where prefixes are shared; the whole network otherwise).
    private static func planBatches(_ context: AnalysisContext, plan: WorkPlan, section units: JournalUnits, members: Int,
                                    granularity: Granularity, masks: [[Float]]) throws {
        let cost = try context.computeCost()
        let reference = context.deterministicGates
        let expected = cost.network(gates: context.survival.map { Float($0) })  // a member's mean cost
        let perImage = cost.network(gates: reference) + (granularity == .pass
            ? masks.reduce(0) { $0 + cost.suffix(gates: $1, after: reference) }
            : Double(members) * expected)
        let batches = stride(from: 0, to: context.source.count, by: context.batchSize).enumerated().map { index, start in
            WorkPlan.Unit(key: units.key(index), cost: Double(min(context.batchSize, context.source.count - start)) * perImage)
        }
        plan.add(.init(key: units.section, kind: .ensembleBatches, units: batches, subNetworks: members,
                       images: context.source.count, overhead: 0))
    }
}
