import DepthLensAnalysis

/// The standard plot of each analysis, drawn from its result table.
public enum AnalysisPlots {
    /// What a table does not say but its plots show.
    public struct Options: Sendable {
        /// Images evaluated, for the subtitle.
        public var images: Int?
        /// Blocks whose shortcut is not the identity (they change shape or stride), marked
        /// on the single-block lesion plot.
        public var downsamplingBlocks: [Int]
        /// The y axis of the single-block lesion plot.
        public var singleBlockYScale: LinePlot.YScale

        public init(images: Int? = nil, downsamplingBlocks: [Int] = [], singleBlockYScale: LinePlot.YScale = .linear) {
            self.images = images
            self.downsamplingBlocks = downsamplingBlocks
            self.singleBlockYScale = singleBlockYScale
        }
    }

    /// Plots for `table`, by file name (without folder).
    public static func plots(for table: ResultTable, options: Options = Options()) -> [(file: String, plot: LinePlot)] {
        guard let analysis = table.rows.first?.analysis else { return [] }
        let name = table.checkpoint.split(separator: "/").last.map(String.init) ?? table.checkpoint
        let subtitle = name + (options.images.map { ", \($0) images" } ?? "") + (table.schedule.isEmpty ? "" : ", schedule \(table.schedule)")
        // Mean and median over trials with their 95% bootstrap intervals (TrialStatistics'
        // rows), or mean and ±1 sd from the trials when the table has no statistics.
        func overTrials(_ trials: [(x: Double, y: Double)], summary: (Experiment) -> Bool, what: String) -> [LinePlot.Series] {
            func summaries(_ metric: String) -> [ResultRow] {
                table.rows.filter { summary($0.experiment) && !$0.recalibrated && $0.metric == metric && $0.k != nil }.sorted { $0.k! < $1.k! }
            }
            let mean = summaries("mean_error"), median = summaries("median_error")
            guard !mean.isEmpty else { return [banded("mean over \(what)", trials)] }
            func band(_ rows: [ResultRow]) -> [(x: Double, low: Double, high: Double)] {
                rows.map { ($0.k!, $0.interval?.low ?? $0.value, $0.interval?.high ?? $0.value) }
            }
            return [LinePlot.Series(name: "mean over \(what)", points: mean.map { ($0.k!, $0.value) }, band: band(mean), bandName: "95% CI of the mean"),
                    LinePlot.Series(name: "median over \(what)", points: median.map { ($0.k!, $0.value) }, dashed: true)]
        }
        // (x, y) of `metric` for the rows `x` gives an x (by default k): y is the value, or
        // the error 1 - value when `error`.
        func points(_ metric: String, error: Bool = false, x: (ResultRow) -> Double? = { $0.k }) -> [(x: Double, y: Double)] {
            table.rows.filter { $0.metric == metric }.compactMap { row in x(row).map { ($0, error ? 1 - row.value : row.value) } }
        }
        // Error rates: a band of ±1 sd is cut to [0, 1], the values an error can take.
        func banded(_ name: String, _ pts: [(x: Double, y: Double)]) -> LinePlot.Series {
            let summary = meanAndDeviation(pts)
            return LinePlot.Series(name: name, points: summary.map { ($0.x, $0.mean) },
                                   band: summary.map { ($0.x, max(0, $0.low), min(1, $0.high)) }, bandName: "±1 sd")
        }
        switch analysis {
        case "lesion":
            var plots: [(String, LinePlot)] = []
            let full = table.value("accuracy", of: .fullNetwork).map { ("no block deleted", 1 - $0) }
            let single = points("accuracy", error: true) { row in row.experiment.block.map(Double.init) }
            if !single.isEmpty {
                plots.append(("lesion-single-block.svg", LinePlot(
                    title: "Deleting one block (Veit et al. 2016)", subtitle: subtitle, xLabel: "deleted block l", yLabel: "test error",
                    series: [.init(name: "one block deleted", points: single.sorted { $0.x < $1.x })], reference: full,
                    marks: options.downsamplingBlocks.isEmpty ? nil : ("downsampling block", options.downsamplingBlocks.map(Double.init)),
                    yScale: options.singleBlockYScale)))
            }
            // k = 0 is the full network, whether it came as `k-0-trial-0` or as `none`.
            var random = points("accuracy", error: true) { row in
                if case .randomLesion(let k, _) = row.experiment { Double(k) } else { nil }
            }
            if !random.isEmpty, !random.contains(where: { $0.x == 0 }) {
                random += points("accuracy", error: true) { $0.experiment == .fullNetwork ? 0 : nil }
            }
            if !random.isEmpty {
                let series = overTrials(random, summary: { if case .randomLesionSummary = $0 { true } else { false } }, what: "trials")
                plots.append(("lesion-k-blocks.svg", LinePlot(
                    title: "Deleting k random blocks", subtitle: subtitle, xLabel: "blocks deleted k", yLabel: "test error",
                    series: series)))
            }
            let pruned = points("accuracy", error: true) { row in
                if case .pruned(_, let depth) = row.experiment { Double(depth) } else { nil }
            }
            if !pruned.isEmpty {
                plots.append(("lesion-prune.svg", LinePlot(
                    title: "Pruned to a fixed depth", subtitle: subtitle, xLabel: "blocks kept", yLabel: "test error",
                    series: [.init(name: "pruned", points: pruned.sorted { $0.x < $1.x }, markersOnly: true)], reference: full)))
            }
            return plots
        case "depth":
            let trials = points("accuracy", error: true) { row in if case .fixedDepth = row.experiment { row.k } else { nil } }
            let deterministic = table.rows.first { $0.experiment.kind == "deterministic" && $0.metric == "accuracy" }
            return [("depth.svg", LinePlot(title: "Error against the number of active blocks", subtitle: subtitle, xLabel: "active blocks",
                                           yLabel: "test error",
                                           series: overTrials(trials, summary: { if case .fixedDepthSummary = $0 { true } else { false } }, what: "sub-networks of that depth"),
                                           reference: deterministic.map { ("deterministic network (\($0.configuration.replacingOccurrences(of: "deterministic-", with: "")) rule)", 1 - $0.value) }))]
        case "sample":
            return [("sample.svg", LinePlot(title: "Sub-networks drawn from the schedule", subtitle: subtitle, xLabel: "active blocks",
                                            yLabel: "test error",
                                            series: [.init(name: "one sub-network", points: points("accuracy", error: true), markersOnly: true)]))]
        case "reorder":
            return [("reorder.svg", LinePlot(title: "Reordered blocks", subtitle: subtitle, xLabel: "Kendall tau to the original order",
                                             yLabel: "test error",
                                             series: [.init(name: "one order", points: points("accuracy", error: true), markersOnly: true)]))]
        case "ensemble":
            let deterministic = table.rows.first { $0.member == .deterministic }?.experiment
            var plots: [(String, LinePlot)] = []
            for (metric, label, error) in [("accuracy", "test error", true), ("nll", "negative log-likelihood", false), ("ece", "expected calibration error", false)] {
                let pts = points(metric, error: error) { row in
                    if case .ensemble(_, let members) = row.experiment { Double(members) } else { nil }
                }.sorted { $0.x < $1.x }
                guard !pts.isEmpty else { continue }
                let reference = deterministic.flatMap { table.value(metric, of: $0) }.map { ("deterministic network", error ? 1 - $0 : $0) }
                plots.append(("ensemble-\(metric).svg", LinePlot(title: "Monte Carlo ensemble of sub-networks", subtitle: subtitle, xLabel: "members M",
                                                                 yLabel: label, series: [.init(name: "ensemble of M", points: pts)],
                                                                 reference: reference)))
            }
            return plots
        case "paths":
            let series = [Experiment.scheduleDistribution, .unrolledBinomial].map { experiment in
                LinePlot.Series(name: experiment == .scheduleDistribution ? "under the schedule (Poisson-binomial)" : "unrolled paths, Binomial(L, 1/2)",
                                points: points("probability") { $0.experiment == experiment ? $0.k : nil })
            }
            return [("paths.svg", LinePlot(title: "Number of active blocks", subtitle: subtitle, xLabel: "active blocks k", yLabel: "probability", series: series))]
        default:
            return []
        }
    }

    /// Writes the results CSV, the masks CSV and every plot of `table` into `folder`,
    /// named after the analysis. Returns the files written.
    @discardableResult
    public static func writeAll(_ table: ResultTable, to folder: String, options: Options = Options()) throws -> [String] {
        let name = table.rows.first?.analysis ?? "results"
        try table.write(to: folder, prefix: "\(name)-")
        var files = ["\(folder)/\(name)-results.csv"] + (table.masks.isEmpty ? [] : ["\(folder)/\(name)-masks.csv"])
        for (file, plot) in plots(for: table, options: options) {
            try plot.write(to: "\(folder)/\(file)")
            files.append("\(folder)/\(file)")
        }
        return files
    }
}
