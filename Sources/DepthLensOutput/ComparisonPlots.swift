import DepthLensAnalysis

/// The overlay plots of a comparison of checkpoints (`compare`, `report A.h5 B.h5 ...`):
/// one series per checkpoint, in its own colour, on the same sub-networks.
public enum ComparisonPlots {
    /// One table per checkpoint for each part of a comparison (empty when the part was not run).
    public struct Tables: Sendable {
        public var lesion: [ResultTable]
        public var ensemble: [ResultTable]
        public var depth: [ResultTable]
        public var paths: [ResultTable]

        public init(lesion: [ResultTable] = [], ensemble: [ResultTable] = [], depth: [ResultTable] = [], paths: [ResultTable] = []) {
            self.lesion = lesion
            self.ensemble = ensemble
            self.depth = depth
            self.paths = paths
        }
    }

    /// The plots, by file name (without folder). `names` are the checkpoints' short names
    /// (legends), in the order of the tables; the first is the one paired differences are
    /// taken against.
    public static func plots(_ tables: Tables, names: [String], options: AnalysisPlots.Options = .init()) -> [(file: String, plot: LinePlot)] {
        let subtitle = names.joined(separator: " vs ") + (options.images.map { ", \($0) images, the same sub-networks on each" } ?? "")
        var plots: [(String, LinePlot)] = []
        func plot(_ file: String, _ title: String, x: String, y: String, _ series: [LinePlot.Series],
                  reference: (name: String, y: Double)? = nil, marks: (name: String, xs: [Double])? = nil,
                  yScale: LinePlot.YScale = .linear, evaluated: Bool = true) {
            guard series.contains(where: { !$0.points.isEmpty }) else { return }
            // Path lengths come from the schedules alone: no images, no sub-networks.
            plots.append((file, LinePlot(title: title, subtitle: evaluated ? subtitle : names.joined(separator: " vs "), xLabel: x, yLabel: y, series: series,
                                         reference: reference, marks: marks, yScale: yScale)))
        }
        // The statistic `metric` of the summary rows `summary` picks, with its interval as a band.
        func summary(_ table: ResultTable, _ metric: String, _ pick: (Experiment) -> Bool) -> [ResultRow] {
            table.rows.filter { pick($0.experiment) && !$0.recalibrated && $0.metric == metric && $0.k != nil }.sorted { $0.k! < $1.k! }
        }
        func banded(_ name: String, _ rows: [ResultRow], band: String, color: Int) -> LinePlot.Series {
            .init(name: name, points: rows.map { ($0.k!, $0.value) },
                  band: rows.map { ($0.k!, $0.interval?.low ?? $0.value, $0.interval?.high ?? $0.value) },
                  bandName: band, color: color)
        }
        let isK: (Experiment) -> Bool = { if case .randomLesionSummary = $0 { true } else { false } }
        let isDepth: (Experiment) -> Bool = { if case .fixedDepthSummary = $0 { true } else { false } }

        // Lesions: one block, k random blocks, and the paired difference per k.
        let single = zip(tables.lesion, names).enumerated().map { i, pair in
            LinePlot.Series(name: pair.1, points: pair.0.rows.filter { $0.metric == "accuracy" && !$0.recalibrated }
                .compactMap { row in row.experiment.block.map { (x: Double($0), y: 1 - row.value) } }.sorted { $0.x < $1.x }, color: i)
        }
        plot("compare-single-block.svg", "Deleting one block", x: "deleted block l", y: "test error", single,
             marks: options.downsamplingBlocks.isEmpty ? nil : ("downsampling block", options.downsamplingBlocks.map(Double.init)),
             yScale: options.singleBlockYScale)
        plot("compare-k-blocks.svg", "Deleting k random blocks (the same blocks on each)", x: "blocks deleted k", y: "test error",
             zip(tables.lesion, names).enumerated().map { i, pair in banded("\(pair.1): mean", summary(pair.0, "mean_error", isK), band: "\(pair.1): 95% CI", color: i) })
        func differences(_ parts: [ResultTable], _ pick: @escaping (Experiment) -> Bool) -> [LinePlot.Series] {
            zip(parts, names).enumerated().dropFirst().map { i, pair in
                banded("\(pair.1) - \(names[0])", summary(pair.0, "mean_error_difference", pick), band: "95% CI", color: i)
            }
        }
        let noDifference = (name: "no difference", y: 0.0)
        plot("compare-k-blocks-difference.svg", "Paired difference of the mean error, k random blocks deleted", x: "blocks deleted k",
             y: "difference of test error", differences(tables.lesion, isK), reference: noDifference)

        // The ensemble as it grows, beside each checkpoint's deterministic network (dashed).
        for (metric, label, error) in [("accuracy", "test error", true), ("nll", "negative log-likelihood", false),
                                       ("ece", "expected calibration error", false)] {
            var series: [LinePlot.Series] = []
            for (i, (table, name)) in zip(tables.ensemble, names).enumerated() {
                let points = table.rows.filter { $0.metric == metric }.compactMap { row -> (x: Double, y: Double)? in
                    if case .ensemble(_, let members) = row.experiment { (Double(members), error ? 1 - row.value : row.value) } else { nil }
                }.sorted { $0.x < $1.x }
                series.append(.init(name: "\(name): ensemble of M", points: points, color: i))
                if let deterministic = table.rows.first(where: { $0.member == .deterministic && $0.metric == metric }),
                   let first = points.first, let last = points.last {
                    let y = error ? 1 - deterministic.value : deterministic.value
                    series.append(.init(name: "\(name): deterministic", points: [(first.x, y), (last.x, y)], dashed: true, color: i))
                }
            }
            plot("compare-ensemble-\(metric == "accuracy" ? "error" : metric).svg", "Monte Carlo ensemble of sub-networks", x: "members M",
                 y: label, series)
        }

        // Error against the number of active blocks, and the paired difference per depth.
        var depth: [LinePlot.Series] = []
        for (i, (table, name)) in zip(tables.depth, names).enumerated() {
            let means = summary(table, "mean_error", isDepth)
            depth.append(banded("\(name): mean", means, band: "\(name): 95% CI", color: i))
            if let deterministic = table.rows.first(where: { $0.experiment.kind == "deterministic" && $0.metric == "accuracy" }),
               let first = means.first, let last = means.last {
                depth.append(.init(name: "\(name): deterministic", points: [(first.k!, 1 - deterministic.value), (last.k!, 1 - deterministic.value)],
                                   dashed: true, color: i))
            }
        }
        plot("compare-depth.svg", "Error against the number of active blocks (the same blocks on each)", x: "active blocks", y: "test error", depth)
        plot("compare-depth-difference.svg", "Paired difference of the mean error against active blocks", x: "active blocks",
             y: "difference of test error", differences(tables.depth, isDepth), reference: noDifference)

        // Path lengths under each checkpoint's schedule.
        var paths = zip(tables.paths, names).enumerated().map { i, pair in
            LinePlot.Series(name: "\(pair.1): under its schedule", points: pair.0.rows.filter {
                $0.experiment == .scheduleDistribution && $0.metric == "probability" && $0.k != nil
            }.map { ($0.k!, $0.value) }, color: i)
        }
        if let first = tables.paths.first {
            paths.append(.init(name: "unrolled paths, Binomial(L, 1/2)", points: first.rows.filter {
                $0.experiment == .unrolledBinomial && $0.metric == "probability" && $0.k != nil
            }.map { ($0.k!, $0.value) }, dashed: true, color: names.count))
        }
        plot("compare-paths.svg", "Number of active blocks", x: "active blocks k", y: "probability", paths, evaluated: false)
        return plots
    }
}
