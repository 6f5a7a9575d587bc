import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// Analyses of fixed sub-networks: each configuration is one gate vector for the whole
/// pass, evaluated with member-scope metrics (MemberEvaluation).

/// `sample`: N sub-networks drawn from the schedule, one mask each for the whole pass;
/// per member its number of active blocks and its metrics.
public enum SampleAnalysis {
    /// With `recalibration`, each member first has its batch-norm statistics re-estimated
    /// on those images (``BatchNormRecalibration``); configurations are then named
    /// `...-recalibrated`.
    public static func run(_ context: AnalysisContext, members count: Int,
                           recalibration: (any ImageSource)? = nil) throws -> ResultTable {
        var table = context.table()
        var configurations: [[Float]] = []
        var active: [Int] = []
        for m in 0..<count {
            var generator = SeededGenerator.stream(seed: context.seed, m)
            let keep = MaskSampling.bernoulli(context.survival, using: &generator)
            configurations.append(context.sampledGates(keep))
            active.append(keep.filter { $0 }.count)
        }
        let results = try MemberEvaluation.run(context, configurations: configurations,
                                               networks: try BatchNormRecalibration.networks(context, configurations, recalibration))
        for (m, values) in results.enumerated() {
            let experiment = Experiment.sampled(index: m)
            let mask = ResultRow.configuration(experiment, recalibrated: recalibration != nil)
            table.recordMask(mask, gates: configurations[m])
            for value in [MetricResult("active_blocks", Double(active[m]))] + values {
                table.append(ResultRow(analysis: "sample", experiment: experiment, recalibrated: recalibration != nil,
                                       member: .number(m), k: Double(active[m]), metric: value.name, value: value.value, mask: mask))
            }
        }
        return table
    }
}

/// `lesion`: blocks deleted from the deterministic network (Veit et al. 2016): each block
/// alone; k random blocks for k = 0...K with T trials each; explicit keep or drop lists;
/// and pruning to a depth d by a rule (LayerDrop, Fan et al. 2019).
public enum LesionAnalysis {
    /// A lesion: which blocks (1-based) to delete, and what experiment that is.
    public struct Lesion: Sendable, Equatable {
        public var experiment: Experiment
        public var dropped: [Int]

        public init(_ experiment: Experiment, dropped: [Int]) {
            self.experiment = experiment
            self.dropped = dropped
        }

        /// The configuration name (`none`, `drop-7`, `k-3-trial-1`, ...).
        public var name: String { experiment.name }
    }

    /// The full network and each block deleted alone.
    public static func singleBlocks(count: Int) -> [Lesion] {
        [Lesion(.fullNetwork, dropped: [])] + (1...count).map { Lesion(.singleLesion(block: $0), dropped: [$0]) }
    }

    /// For k = 0...maxK, `trials` draws of k distinct blocks (one draw for k = 0 and k = L,
    /// which have one configuration each).
    public static func randomBlocks(count: Int, maxK: Int, trials: Int, seed: UInt64) -> [Lesion] {
        (0...min(maxK, count)).flatMap { k in
            randomBlocks(k: k, among: Array(stride(from: 1, through: count, by: 1)), trials: 0..<(k == 0 || k == count ? 1 : trials), seed: seed)
        }
    }

    /// Trials `trials` of deleting `k` blocks drawn uniformly among `candidates` (1-based
    /// block numbers, such as the blocks left by `--exclude`). Trial t of k draws from its
    /// own stream of `seed`, so adding trials keeps the earlier ones, and with every block a
    /// candidate the draws are those of ``randomBlocks(count:maxK:trials:seed:)``. Every
    /// (k, trial) gets a stream of its own for k below 2^22 and trials below 2^38 (the
    /// analyses refuse more; ``TrialStreams``).
    public static func randomBlocks(k: Int, among candidates: [Int], trials: Range<Int>, seed: UInt64) -> [Lesion] {
        trials.map { t in
            var generator = SeededGenerator.stream(seed: seed, TrialStreams.index(.randomLesion, group: k, trial: t))
            let keep = MaskSampling.exactly(candidates.count - k, of: candidates.count, using: &generator)
            let dropped = keep.enumerated().filter { !$0.element }.map { candidates[$0.offset] }
            return Lesion(.randomLesion(k: k, trial: t), dropped: dropped)
        }
    }

    /// Random deletion of k = `ks` blocks among `candidates`, with trials per k as `plan`
    /// says (k = 0 and k = every candidate once). Append ``TrialStatistics/rows(for:images:)``
    /// for the mean and median error with intervals.
    public static func runRandom(_ context: AnalysisContext, candidates: [Int], ks: ClosedRange<Int>, plan: TrialPlan,
                                 recalibration: (any ImageSource)? = nil) throws -> ResultTable {
        try runRandom([context], candidates: candidates, ks: ks, plan: plan, recalibration: recalibration)[0]
    }

    /// ``runRandom(_:candidates:ks:plan:recalibration:)`` on several checkpoints, paired
    /// (a comparison): trial t of k deletes the same blocks on each, and adaptive rounds
    /// go on while any checkpoint's interval is too wide (``TrialPlan``), so every
    /// checkpoint gets the same trials. One table per context, in order; the contexts
    /// share the seed of the first.
    public static func runRandom(_ contexts: [AnalysisContext], candidates: [Int], ks: ClosedRange<Int>, plan: TrialPlan,
                                 recalibration: (any ImageSource)? = nil) throws -> [ResultTable] {
        let groups = Array(ks.clamped(to: 0...candidates.count))
        let seed = contexts[0].seed
        return try plan.pairedRounds(checkpoints: contexts.count, groups: groups, single: [0, candidates.count], seed: seed,
                                     stream: TrialStatistics.randomLesionStream,
            evaluate: { work in
                let lesions = work.flatMap { randomBlocks(k: $0.group, among: candidates, trials: $0.trials, seed: seed) }
                return try contexts.map { try run($0, lesions: lesions, recalibration: recalibration) }
            },
            errors: { table, k in
                table.rows.compactMap { row in
                    guard case .randomLesion(k, _) = row.experiment, row.metric == "accuracy", row.value.isFinite else { return nil }
                    return 1 - row.value
                }
            })
    }

    /// The blocks random deletion may draw from: every block except `excluded`, and with
    /// `droppableOnly` only blocks the schedule ever drops in training (p_l < 1).
    public static func candidates(blockCount: Int, survival: [Double], excluded: Set<Int>, droppableOnly: Bool) -> [Int] {
        stride(from: 1, through: blockCount, by: 1).filter { !excluded.contains($0) && (!droppableOnly || survival[$0 - 1] < 1) }
    }

    /// Keep about `depth` blocks by a rule, always keeping blocks whose shortcut is not the
    /// identity when `keepDownsampling`:
    /// - `every-other` is LayerDrop's rule (Fan et al. 2019, section 5): for the pruning
    ///   rate p = 1 - depth / L, delete the blocks l with l ≡ 0 (mod ⌊1/p⌋); at depth L / 2
    ///   that deletes blocks 2, 4, 6, ... and keeps 1, 3, 5, ...
    /// - `evenly-spaced` keeps exactly `depth` blocks, the one nearest the middle of each of
    ///   `depth` equal spans of the network.
    public static func prune(blocks: [BlockSpec], depth: Int, rule: String, keepDownsampling: Bool = true) throws -> Lesion {
        let count = blocks.count
        var keep = Set<Int>()
        guard (0...count).contains(depth) else {
            throw PruneError.depthOutOfRange(depth, allowed: 0...count)
        }
        switch rule {
        case "every-other":
            let rate = Double(count - depth) / Double(count)
            let period = rate > 0 ? Int((1 / rate).rounded(.down)) : Int.max
            keep = Set((1...count).filter { $0 % period != 0 })
        case "evenly-spaced":
            if depth > 0 {
                for i in 0..<depth { keep.insert(Int((Double(i) + 0.5) * Double(count) / Double(depth)) + 1) }
            }
        default:
            throw PruneError.unknownRule(rule, known: PruneError.rules)
        }
        if keepDownsampling { for b in blocks where b.shortcut != .identity { keep.insert(b.index) } }
        let dropped = (1...count).filter { !keep.contains($0) }
        return Lesion(.pruned(rule: rule, depth: count - dropped.count), dropped: dropped)
    }

    /// Evaluates lesions of the deterministic network; every row's k is the number of blocks
    /// deleted. With `recalibration`, each lesioned network first has its batch-norm
    /// statistics re-estimated on those images (``BatchNormRecalibration``); configurations
    /// are then named `...-recalibrated`.
    public static func run(_ context: AnalysisContext, lesions: [Lesion], analysis: String = "lesion",
                           recalibration: (any ImageSource)? = nil) throws -> ResultTable {
        var context = context
        // McNemar's counts against the full network, for TrialStatistics' test of single lesions.
        if context.metrics.contains("accuracy"), !context.metrics.contains("discordance"),
           (try? context.registry.makeMetric("discordance", classes: context.checkpoint.architecture.numClasses)) != nil {
            context.metrics.append("discordance")
        }
        var table = context.table()
        let base = context.deterministicGates
        let configurations = try lesions.map { lesion -> [Float] in
            var gates = base
            for block in lesion.dropped {
                guard (1...context.blockCount).contains(block) else {
                    throw BlockSelectionError.noSuchBlock(block, blockCount: context.blockCount)
                }
                gates[block - 1] = 0
            }
            return gates
        }
        let results = try MemberEvaluation.run(context, configurations: configurations,
                                               networks: try BatchNormRecalibration.networks(context, configurations, recalibration))
        for (i, lesion) in lesions.enumerated() {
            let mask = ResultRow.configuration(lesion.experiment, recalibrated: recalibration != nil)
            let deleted = Set(lesion.dropped).count
            table.recordMask(mask, gates: configurations[i])
            for value in [MetricResult("active_blocks", Double(context.blockCount - deleted))] + results[i] {
                table.append(ResultRow(analysis: analysis, experiment: lesion.experiment, recalibrated: recalibration != nil,
                                       member: .deterministic, k: Double(deleted), metric: value.name, value: value.value, mask: mask))
            }
        }
        return table
    }
}

/// `depth`: metrics against the exact number of active blocks; for each depth d,
/// `trials` sub-networks drawn uniformly among those with exactly d blocks on, gated as
/// during training (kept blocks 1, or 1/p_l for an inverted-trained network).
public enum DepthAnalysis {
    /// `trials` sub-networks per depth (one at depth 0 and at L, which have one
    /// configuration each). With `recalibration`, as ``SampleAnalysis/run(_:members:recalibration:)``.
    public static func run(_ context: AnalysisContext, depths: [Int], trials: Int,
                           recalibration: (any ImageSource)? = nil) throws -> ResultTable {
        try run(context, depths: depths, plan: TrialPlan(fixed: trials), recalibration: recalibration)
    }

    /// Trials per depth as `plan` says (depth 0 and L once). Append
    /// ``TrialStatistics/rows(for:images:)`` for the mean and median error with intervals.
    public static func run(_ context: AnalysisContext, depths: [Int], plan: TrialPlan,
                           recalibration: (any ImageSource)? = nil) throws -> ResultTable {
        try run([context], depths: depths, plan: plan, recalibration: recalibration)[0]
    }

    /// ``run(_:depths:plan:recalibration:)`` on several checkpoints with the same number
    /// of blocks, paired (a comparison): trial t of depth d keeps the same blocks on each,
    /// and adaptive rounds go on while any checkpoint's interval is too wide, so every
    /// checkpoint gets the same trials. One table per context, in order; the contexts share
    /// the seed of the first.
    public static func run(_ contexts: [AnalysisContext], depths: [Int], plan: TrialPlan,
                           recalibration: (any ImageSource)? = nil) throws -> [ResultTable] {
        let blockCount = contexts[0].blockCount
        precondition(contexts.allSatisfy { $0.blockCount == blockCount }, "paired depths need the same number of blocks")
        for d in depths where !(0...blockCount).contains(d) {
            throw BlockSelectionError.depthOutOfRange(d, blockCount: blockCount)
        }
        var tables = try plan.pairedRounds(checkpoints: contexts.count, groups: depths, single: [0, blockCount], seed: contexts[0].seed,
                                           stream: TrialStatistics.depthStream,
            evaluate: { work in
                try contexts.map { try evaluate($0, drawn: work.flatMap { w in w.trials.map { (w.group, $0) } }, recalibration: recalibration) }
            },
            errors: { table, d in
                table.rows.compactMap { row in
                    guard case .fixedDepth(d, _) = row.experiment, row.metric == "accuracy", row.value.isFinite else { return nil }
                    return 1 - row.value
                }
            })
        // The deterministic network under the test-time rule, the plot's reference line.
        for (i, context) in contexts.enumerated() {
            let deterministic = Experiment.deterministic(rule: context.rule)
            tables[i].recordMask(deterministic.name, gates: context.deterministicGates)
            for value in try MemberEvaluation.run(context, configurations: [context.deterministicGates])[0] {
                tables[i].append(ResultRow(analysis: "depth", experiment: deterministic, member: .deterministic, metric: value.name,
                                           value: value.value, mask: deterministic.name))
            }
        }
        return tables
    }

    static func evaluate(_ context: AnalysisContext, drawn: [(depth: Int, trial: Int)],
                         recalibration: (any ImageSource)?) throws -> ResultTable {
        var table = context.table()
        let configurations = drawn.map { d, t in
            var generator = SeededGenerator.stream(seed: context.seed, TrialStreams.index(.fixedDepth, group: d, trial: t))
            return context.sampledGates(MaskSampling.exactly(d, of: context.blockCount, using: &generator))
        }
        let results = try MemberEvaluation.run(context, configurations: configurations,
                                               networks: try BatchNormRecalibration.networks(context, configurations, recalibration))
        for (i, (d, t)) in drawn.enumerated() {
            let experiment = Experiment.fixedDepth(active: d, trial: t)
            let mask = ResultRow.configuration(experiment, recalibrated: recalibration != nil)
            table.recordMask(mask, gates: configurations[i])
            for value in results[i] {
                table.append(ResultRow(analysis: "depth", experiment: experiment, recalibrated: recalibration != nil,
                                       member: .number(t), k: Double(d), metric: value.name, value: value.value, mask: mask))
            }
        }
        return table
    }
}

/// `reorder`: random swaps of shape-compatible blocks within a stage (Veit et al. 2016);
/// metrics against Kendall's tau between the new order and the original one.
public enum ReorderAnalysis {
    /// Kendall's tau between a permutation of 1...n and the identity.
    public static func kendallTau(_ order: [Int]) -> Double {
        let n = order.count
        guard n > 1 else { return 1 }
        var concordant = 0, discordant = 0
        for i in 0..<n { for j in (i + 1)..<n { if order[i] < order[j] { concordant += 1 } else { discordant += 1 } } }
        return Double(concordant - discordant) / Double(n * (n - 1) / 2)
    }

    public static func run(_ context: AnalysisContext, swaps: [Int], trials: Int) throws -> ResultTable {
        var table = context.table()
        let network = context.evaluator.network
        let groups = network.swappableGroups(context.evaluator.unit).filter { $0.count > 1 }
        guard !groups.isEmpty else {
            throw ReorderError.nothingToReorder
        }
        try TrialStreams.check(groups: swaps, trials: trials)
        var networks: [Network] = []
        var configurations: [[Float]] = []
        var described: [(experiment: Experiment, tau: Double, order: [Int])] = []
        let base = context.deterministicGates
        for s in swaps {
            for t in 0..<(s == 0 ? 1 : trials) {
                var generator = SeededGenerator.stream(seed: context.seed, TrialStreams.index(.reordering, group: s, trial: t))
                var order = Array(1...context.blockCount)
                for _ in 0..<s {
                    let group = groups[Int(generator.next() % UInt64(groups.count))]
                    let a = Int(generator.next() % UInt64(group.count))
                    var b = Int(generator.next() % UInt64(group.count - 1))
                    if b >= a { b += 1 }
                    // Swap the blocks currently sitting at these two positions of the group.
                    order.swapAt(group[a] - 1, group[b] - 1)
                }
                networks.append(try network.reordered(network.unitOrder(order, unit: context.evaluator.unit)))
                configurations.append(order.map { base[$0 - 1] })  // gates follow the blocks
                described.append((.reordered(swaps: s, trial: t), kendallTau(order), order))
            }
        }
        let results = try MemberEvaluation.run(context, configurations: configurations, networks: networks)
        for (i, d) in described.enumerated() {
            table.recordMask(d.experiment.name, gates: configurations[i], order: d.order)
            for value in [MetricResult("kendall_tau", d.tau)] + results[i] {
                table.append(ResultRow(analysis: "reorder", experiment: d.experiment, member: .deterministic, k: d.tau,
                                       metric: value.name, value: value.value, mask: d.experiment.name))
            }
        }
        return table
    }
}

/// `paths`: the distribution of the number of active blocks; needs no network.
public enum PathsAnalysis {
    public static func run(survival p: [Double], checkpoint: String, schedule: String) -> ResultTable {
        var table = ResultTable(checkpoint: checkpoint, schedule: schedule, seed: 0)
        let schedulePMF = PathDistribution.poissonBinomial(p)
        let binomial = PathDistribution.unrolledBinomial(blocks: p.count)
        for k in 0...p.count {
            table.append(ResultRow(analysis: "paths", experiment: .scheduleDistribution, k: Double(k),
                                   metric: "probability", value: schedulePMF[k]))
            table.append(ResultRow(analysis: "paths", experiment: .unrolledBinomial, k: Double(k),
                                   metric: "probability", value: binomial[k]))
        }
        let (mean, variance) = PathDistribution.moments(p)
        table.append(ResultRow(analysis: "paths", experiment: .scheduleDistribution, metric: "mean_active_blocks", value: mean))
        table.append(ResultRow(analysis: "paths", experiment: .scheduleDistribution, metric: "variance_active_blocks", value: variance))
        table.append(ResultRow(analysis: "paths", experiment: .unrolledBinomial, metric: "mean_active_blocks", value: Double(p.count) / 2))
        table.append(ResultRow(analysis: "paths", experiment: .unrolledBinomial, metric: "variance_active_blocks", value: Double(p.count) / 4))
        return table
    }
}
