import DepthLensPluginAPI

/// The paired difference between checkpoints compared on the same sub-networks (a
/// comparison: ``LesionAnalysis/runRandom(_:candidates:ks:plan:recalibration:)`` and
/// ``DepthAnalysis/run(_:depths:plan:recalibration:)`` on several contexts): for each k of
/// random deletion and each depth, the mean over trials of (error of checkpoint B on trial
/// t) - (error of the first checkpoint on trial t), with a percentile bootstrap interval over
/// the trials (resampling the pairs). Pairing removes the variation between trials (which
/// blocks are hit) that both checkpoints share, so where their errors move together the
/// difference's interval is narrower than the two separate intervals suggest.
///
/// Rows (docs/results-csv.md, "compare"): metric `mean_error_difference` on the `k-K` /
/// `depth-D` summary configuration of checkpoint B, `versus` naming the first checkpoint,
/// method `bootstrap-percentile-paired` with `n` the number of pairs. A k or depth evaluated
/// once (k = 0, every block, depth 0 or L) gives the plain difference, method
/// `evaluated-once`, `n` 1, no interval.
public enum PairedDifferences {
    /// Bootstrap stream offsets (plus k or d), apart from ``TrialStatistics``' own.
    static let randomLesionStream = 7_000_000, depthStream = 8_000_000

    /// The difference rows of `table` against `reference` (the first checkpoint's table of
    /// the same analysis), to append to `table`.
    public static func rows(for table: ResultTable, versus reference: ResultTable) -> [ResultRow] {
        struct Group: Hashable { var x: Int; var depth: Bool }
        struct Pair: Hashable { var group: Group; var trial: Int }
        // Trial errors by (k or depth, trial); k = 0 is the full network when random
        // deletion did not evaluate it itself (as in TrialStatistics).
        func errors(_ table: ResultTable) -> (values: [Pair: Double], analysis: [Group: String], order: [Group]) {
            var values: [Pair: Double] = [:], analysis: [Group: String] = [:], order: [Group] = []
            for row in table.rows where row.metric == "accuracy" && !row.recalibrated && row.value.isFinite {
                let pair: Pair
                switch row.experiment {
                case .randomLesion(let k, let t): pair = Pair(group: Group(x: k, depth: false), trial: t)
                case .fixedDepth(let d, let t): pair = Pair(group: Group(x: d, depth: true), trial: t)
                default: continue
                }
                if analysis[pair.group] == nil { order.append(pair.group); analysis[pair.group] = row.analysis }
                values[pair] = 1 - row.value
            }
            let zero = Group(x: 0, depth: false)
            if order.contains(where: { !$0.depth }), analysis[zero] == nil,
               let full = table.rows.first(where: { $0.experiment == .fullNetwork && !$0.recalibrated && $0.metric == "accuracy" && $0.value.isFinite }) {
                order.insert(zero, at: 0)
                analysis[zero] = full.analysis
                values[Pair(group: zero, trial: 0)] = 1 - full.value
            }
            return (values, analysis, order)
        }
        let (mine, analysis, order) = errors(table)
        let theirs = errors(reference).values
        var out: [ResultRow] = []
        for group in order {
            let trials = mine.keys.filter { $0.group == group && theirs[$0] != nil }.map(\.trial).sorted()
            guard !trials.isEmpty else { continue }
            let differences = trials.map { mine[Pair(group: group, trial: $0)]! - theirs[Pair(group: group, trial: $0)]! }
            let experiment: Experiment = group.depth ? .fixedDepthSummary(active: group.x) : .randomLesionSummary(k: group.x)
            var row = ResultRow(analysis: analysis[group]!, experiment: experiment, member: .overTrials, k: Double(group.x),
                                metric: "mean_error_difference", value: differences[0])
            row.versus = reference.checkpoint
            if differences.count == 1 {
                row.interval = ResultRow.Interval(low: nil, high: nil, method: "evaluated-once", n: 1)
            } else {
                let stream = (group.depth ? depthStream : randomLesionStream) + group.x
                let mean = Statistics.bootstrap(differences, seed: table.seed, stream: stream).mean
                row.value = mean.value
                row.interval = ResultRow.Interval(low: mean.low, high: mean.high, method: "bootstrap-percentile-paired", n: differences.count)
            }
            out.append(row)
        }
        return out
    }
}
