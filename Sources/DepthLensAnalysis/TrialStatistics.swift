import DepthLensPluginAPI

/// The statistics rows of the lesion and depth analyses (docs/results-csv.md, "Intervals
/// and tests"), computed from a table's per-configuration `accuracy` rows:
///
/// - `error` of each single network (the full network, each single lesion, lists and
///   prunings) with its Wilson score interval over the images;
/// - `mcnemar_p` of each single lesion against the full network, from its
///   `discordant_lost` and `discordant_gained` rows (``Statistics/mcNemar(lost:gained:)``);
/// - `mean_error`, `median_error` (percentile bootstrap intervals over trials, B =
///   ``Statistics/bootstrapResamples``) and `sd_error` of each k of random deletion and each
///   depth, on a summary row (`k-K`, `depth-D`, member `over-trials`). A k or depth with one
///   configuration (k = 0, every candidate deleted, depth 0 or L) is evaluated once: its
///   mean and median are that network's error, with a Wilson interval.
public enum TrialStatistics {
    /// Bootstrap stream offsets, one per analysis, so intervals are reproducible from the seed.
    static let randomLesionStream = 5_000_000, depthStream = 6_000_000

    /// The statistics rows of `table` (from `images` images), to append to it.
    public static func rows(for table: ResultTable, images: Int) -> [ResultRow] {
        var out: [ResultRow] = []
        let accuracy = table.rows.filter { $0.metric == "accuracy" && $0.value.isFinite }
        func wilson(_ error: Double) -> ResultRow.Interval? {
            Statistics.wilson(successes: (error * Double(images)).rounded(), n: images).map {
                ResultRow.Interval(low: $0.low, high: $0.high, method: "wilson", n: images)
            }
        }
        // Single networks: their error with a Wilson interval; single lesions also McNemar's test.
        for row in accuracy where row.experiment.trial == nil && row.member == .deterministic {
            switch row.experiment {
            case .fullNetwork, .singleLesion, .dropList, .keepList, .pruned: break
            default: continue
            }
            var error = row
            error.metric = "error"
            error.value = 1 - row.value
            error.interval = wilson(error.value)
            out.append(error)
            if case .singleLesion = row.experiment,
               let lost = table.rows.first(where: { $0.experiment == row.experiment && $0.recalibrated == row.recalibrated && $0.metric == "discordant_lost" })?.value,
               let gained = table.rows.first(where: { $0.experiment == row.experiment && $0.recalibrated == row.recalibrated && $0.metric == "discordant_gained" })?.value,
               lost.isFinite, gained.isFinite {
                let test = Statistics.mcNemar(lost: Int(lost), gained: Int(gained))
                var p = row
                p.metric = "mcnemar_p"
                p.value = test.p
                p.interval = ResultRow.Interval(low: nil, high: nil, method: test.method, n: Int(lost + gained))
                out.append(p)
            }
        }
        // Trials: grouped by k (random deletion) or depth, and by recalibration.
        struct Group: Hashable { var analysis: String; var x: Int; var recalibrated: Bool; var depth: Bool }
        var groups: [Group: [Double]] = [:]
        var order: [Group] = []
        for row in accuracy {
            let group: Group
            switch row.experiment {
            case .randomLesion(let k, _): group = Group(analysis: row.analysis, x: k, recalibrated: row.recalibrated, depth: false)
            case .fixedDepth(let d, _): group = Group(analysis: row.analysis, x: d, recalibrated: row.recalibrated, depth: true)
            default: continue
            }
            if groups[group] == nil { order.append(group) }
            groups[group, default: []].append(1 - row.value)
        }
        // k = 0 is the full network when random deletion did not evaluate it itself.
        if let full = accuracy.first(where: { $0.experiment == .fullNetwork && !$0.recalibrated }),
           order.contains(where: { !$0.depth && !$0.recalibrated }),
           !order.contains(where: { !$0.depth && !$0.recalibrated && $0.x == 0 }) {
            let group = Group(analysis: full.analysis, x: 0, recalibrated: false, depth: false)
            order.insert(group, at: 0)
            groups[group] = [1 - full.value]
        }
        for group in order {
            let errors = groups[group]!
            let experiment: Experiment = group.depth ? .fixedDepthSummary(active: group.x) : .randomLesionSummary(k: group.x)
            let member: Member = .overTrials
            func row(_ metric: String, _ value: Double, _ interval: ResultRow.Interval?) -> ResultRow {
                ResultRow(analysis: group.analysis, experiment: experiment, recalibrated: group.recalibrated, member: member,
                          k: Double(group.x), metric: metric, value: value, interval: interval)
            }
            if errors.count == 1 {
                let interval = wilson(errors[0])
                out += [row("mean_error", errors[0], interval), row("median_error", errors[0], interval), row("sd_error", 0, nil)]
            } else {
                let stream = (group.depth ? depthStream : randomLesionStream) + group.x
                let (mean, median) = Statistics.bootstrap(errors, seed: table.seed, stream: stream)
                func interval(_ e: Statistics.Estimate) -> ResultRow.Interval {
                    ResultRow.Interval(low: e.low, high: e.high, method: "bootstrap-percentile", n: errors.count)
                }
                let m = mean.value
                let sd = (errors.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(errors.count - 1)).squareRoot()
                out += [row("mean_error", mean.value, interval(mean)), row("median_error", median.value, interval(median)),
                        row("sd_error", sd, nil)]
            }
        }
        return out
    }

    /// The width (high - low) of the bootstrap interval of the mean of `errors`, as
    /// ``rows(for:images:)`` would report it for that group; 0 for fewer than two values.
    static func meanIntervalWidth(_ errors: [Double], seed: UInt64, stream: Int) -> Double {
        guard errors.count > 1 else { return 0 }
        let mean = Statistics.bootstrap(errors, seed: seed, stream: stream).mean
        return mean.high - mean.low
    }
}

/// How many trials a random deletion or a depth gets: a fixed number, or trials added in
/// rounds until the 95% interval of the mean error is narrow enough.
public struct TrialPlan: Sendable, Equatable {
    /// Exactly this many trials per k or depth (nil: adaptive).
    public var fixed: Int?
    /// Adaptive: the widest acceptable 95% bootstrap interval of the mean error (high - low).
    public var ciWidth: Double
    /// Adaptive: trials of the first round, and added per round to a k whose interval is
    /// still wider than ``ciWidth``.
    public var step: Int
    /// Adaptive: no k gets more trials than this.
    public var maximum: Int

    /// The defaults: rounds of 10 trials until the mean error's interval is at most 4
    /// points wide (±2), at most 60 trials.
    public static let defaultCIWidth = 0.04, defaultStep = 10, defaultMaximum = 60

    public init(fixed: Int? = nil, ciWidth: Double = defaultCIWidth, step: Int = defaultStep, maximum: Int = defaultMaximum) {
        self.fixed = fixed
        self.ciWidth = ciWidth
        self.step = step
        self.maximum = maximum
    }

    /// Runs `evaluate` on rounds of trials `range` for each group (k or depth) in
    /// `groups`, with `groups` deciding nothing: a group listed in `single` gets one trial;
    /// with a fixed plan every other group gets ``fixed`` trials in one round; adaptively,
    /// ``step`` trials at a time until the interval of its mean error (from `errors` of the
    /// table so far) is at most ``ciWidth`` wide or it has ``maximum`` trials. Deterministic:
    /// the decisions depend only on results, which depend only on the seed and the data.
    func rounds(groups: [Int], single: Set<Int>, seed: UInt64, stream: Int,
                evaluate: ([(group: Int, trials: Range<Int>)]) throws -> ResultTable,
                errors: (ResultTable, Int) -> [Double]) throws -> ResultTable {
        try pairedRounds(checkpoints: 1, groups: groups, single: single, seed: seed, stream: stream,
                         evaluate: { [try evaluate($0)] }, errors: errors)[0]
    }

    /// ``rounds(groups:single:seed:stream:evaluate:errors:)`` for several checkpoints at
    /// once, paired: each round's trials are drawn once and `evaluate` returns one table per
    /// checkpoint for them; a group gets another round while the interval of ANY
    /// checkpoint's mean error is wider than ``ciWidth``. So every checkpoint gets the same
    /// trials of every group, and trial t is the same sub-network on each.
    func pairedRounds(checkpoints count: Int, groups: [Int], single: Set<Int>, seed: UInt64, stream: Int,
                      evaluate: ([(group: Int, trials: Range<Int>)]) throws -> [ResultTable],
                      errors: (ResultTable, Int) -> [Double]) throws -> [ResultTable] {
        try TrialStreams.check(groups: groups, trials: fixed ?? maximum)
        var done: [Int: Int] = [:]
        var tables: [ResultTable]?
        var pending = groups
        while !pending.isEmpty {
            let size = fixed ?? step
            let work = pending.map { g -> (group: Int, trials: Range<Int>) in
                let start = done[g] ?? 0
                let end = single.contains(g) ? 1 : (fixed ?? min(maximum, start + size))
                return (g, start..<end)
            }.filter { !$0.trials.isEmpty }
            if work.isEmpty { break }
            let more = try evaluate(work)
            precondition(more.count == count, "one table per checkpoint")
            tables = tables.map { zip($0, more).map { old, new in var merged = old; merged.merge(new); return merged } } ?? more
            for w in work { done[w.group] = w.trials.upperBound }
            guard fixed == nil else { break }
            pending = pending.filter { g in
                guard !single.contains(g), done[g]! < maximum else { return false }
                return tables!.contains { table in
                    let e = errors(table, g)
                    // Without accuracy rows there is nothing to narrow: one round only.
                    guard e.count == done[g]! else { return false }
                    return TrialStatistics.meanIntervalWidth(e, seed: seed, stream: stream + g) > ciWidth
                }
            }
        }
        return tables ?? (0..<count).map { _ in ResultTable(checkpoint: "", schedule: "", seed: seed) }
    }
}
