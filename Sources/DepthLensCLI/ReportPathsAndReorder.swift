import ArgumentParser
import DepthLens
import Foundation

/// The parts of `depthlens report` after the depth study: blocks reordered within their
/// stages (error against Kendall's tau) and Veit et al.'s effective paths (gradient
/// magnitude by path length). Both run inside the report's journal, so `--resume`,
/// `--dry-run`, `--shard` and `merge` treat their units like the others'.
struct ReportPathsAndReorder: ParsableArguments {
    @Option(help: "Numbers of random swaps of the reorder part, comma-separated (2 orders each, one at 0); empty to skip it.")
    var swaps = "0,2,8"

    @Option(help: "Images of the gradient-paths part (the first of the data; 0 skips it).")
    var gradientImages = 8

    @Option(help: "Route patterns per path length of the gradient-paths part.")
    var gradientSamples = 4

    /// Orders drawn per number of swaps: each is a network of its own, evaluated alone over
    /// the data (no prefix to share), so the part stays small by default (six passes).
    static let reorderTrials = 2

    func validate() throws {
        let counts = try swapCounts()
        try SizeBounds.checkSwaps(counts)
        try SizeBounds.check(flag: "--swaps", [(counts.count, "numbers of swaps"), (Self.reorderTrials, "orders")])
        guard gradientImages >= 0 else { throw ValidationError("--gradient-images must be zero or more.") }
        if gradientImages > 0 {
            do {
                try SizeBounds.checkGradientPaths(images: gradientImages, samples: gradientSamples)
            } catch let error as ValidationError {
                throw ValidationError(error.message.replacingOccurrences(of: "--samples", with: "--gradient-samples"))
            }
        }
    }

    /// The journal's record of these flags: a resume or a merge with other values is refused.
    var parameters: [(String, String)] {
        [("swaps", swaps), ("gradient images", "\(gradientImages)"), ("gradient samples", "\(gradientSamples)")]
    }

    func swapCounts() throws -> [Int] {
        swaps.trimmingCharacters(in: .whitespaces).isEmpty ? [] : try parseBlockList(swaps, flag: "--swaps")
    }

    /// The parts' tables, nil for a part skipped (by the flags, or because the network has
    /// nothing to reorder or no backward pass: `notes` says which and why).
    struct Tables {
        var reorder: ResultTable?
        var gradients: ResultTable?
        var notes: [String] = []
    }

    /// Runs both parts; `timed` names and times each.
    func run(_ context: AnalysisContext, memberContext: AnalysisContext,
             timed: (String, () throws -> ResultTable?) throws -> ResultTable?) throws -> Tables {
        var tables = Tables()
        let counts = try swapCounts()
        if counts.isEmpty {
            tables.notes.append("reorder: skipped (--swaps is empty)")
        } else if context.evaluator.network.swappableGroups(context.evaluator.unit).allSatisfy({ $0.count < 2 }) {
            tables.notes.append("reorder: skipped, \(ReorderError.nothingToReorder)")
        } else {
            tables.reorder = try timed("reorder") { try ReorderAnalysis.run(memberContext, swaps: counts, trials: Self.reorderTrials) }
        }
        if gradientImages == 0 {
            tables.notes.append("gradient paths: skipped (--gradient-images 0)")
        } else if let refusal = context.evaluator.backwardRefusal {
            tables.notes.append("gradient paths: skipped, \(refusal)")
        } else {
            tables.gradients = try timed("gradient paths") {
                try GradientPathsAnalysis.run(context, images: gradientImages, samples: gradientSamples)
            }
        }
        return tables
    }

    /// Writes each part's CSVs and plots into `folder`; returns the files.
    static func write(_ tables: Tables, context: AnalysisContext, folder: String) throws -> [String] {
        var files: [String] = []
        if let reorder = tables.reorder { files += try AnalysisPlots.writeAll(reorder, to: folder, options: plotOptions(context)) }
        if let gradients = tables.gradients {
            var options = plotOptions(context)
            options.images = gradients.rows.first { $0.metric == "images" }.map { Int($0.value) }
            files += try AnalysisPlots.writeAll(gradients, to: folder, options: options)
        }
        return files
    }

    /// summary.md's sections for both parts.
    static func markdown(_ tables: Tables, context: AnalysisContext) -> String {
        func pct(_ v: Double) -> String { String(format: "%.2f%%", 100 * v) }
        var out = ""
        if let reorder = tables.reorder {
            out += "## Reordered blocks (Veit et al. 2016)\n\n"
            var bySwaps: [Int: [(tau: Double, error: Double)]] = [:]
            for row in reorder.rows where row.metric == "accuracy" {
                if case .reordered(let swaps, _) = row.experiment, let tau = row.k { bySwaps[swaps, default: []].append((tau, 1 - row.value)) }
            }
            out += bySwaps.isEmpty ? "- error n/a: accuracy is not among the metrics (`reorder-results.csv` has the others)\n"
                : "| swaps | orders | mean Kendall tau | mean error | worst error |\n|---|---|---|---|---|\n"
            for (swaps, orders) in bySwaps.sorted(by: { $0.key < $1.key }) {
                let taus = orders.map(\.tau), errors = orders.map(\.error)
                out += "| \(swaps) | \(orders.count) | \(String(format: "%.3f", Statistics.mean(taus))) | \(pct(Statistics.mean(errors))) | \(pct(errors.max() ?? 0)) |\n"
            }
            out += "\nBlocks with identity shortcuts swapped at random within their stage; error against Kendall's tau to the original order in `reorder.svg`.\n\n"
        }
        if let gradients = tables.gradients {
            func effective(_ metric: String) -> Double? { gradients.value(metric, of: .effectivePaths) }
            let means = gradients.rows.filter { row in
                if case .gradientPathSummary = row.experiment { row.metric == "mean_gradient_norm" && row.value > 0 } else { false }
            }.compactMap { row in row.k.map { (k: $0, norm: row.value) } }
            let images = gradients.rows.first { $0.metric == "images" }.map { Int($0.value) } ?? 0
            let samples = gradients.rows.filter { $0.metric == "samples" }.map { Int($0.value) }.max() ?? 0
            out += "## Effective paths (Veit et al. 2016, section 5)\n\n"
            if let low = effective("effective_length_low"), let high = effective("effective_length_high"),
               let mode = effective("most_gradient_length"), let mean = effective("mean_gradient_length") {
                out += "- paths of \(Int(low)) to \(Int(high)) of the \(context.evaluator.network.blockCount) blocks carry \(Int(100 * GradientPathsAnalysis.effectiveShare))% of the gradient at the input (most at length \(Int(mode)); mean length \(String(format: "%.1f", mean)))\n"
            }
            if let decay = decayPerBlock(means) {
                out += "- the gradient magnitude along one path falls by a factor \(String(format: "%.2f", decay)) per block of its length (least-squares fit of its log)\n"
            }
            out += "- \(images) images, \(samples) route patterns per length; `gradient-paths-magnitude.svg`, `gradient-paths-effective.svg`\n\n"
        }
        for note in tables.notes { out += "- \(note)\n" }
        if !tables.notes.isEmpty { out += "\n" }
        if tables.reorder != nil || tables.gradients != nil {
            out += "Files: " + [tables.reorder.map { _ in "`reorder-results.csv`" }, tables.gradients.map { _ in "`gradient-paths-results.csv`" }]
                .compactMap { $0 }.joined(separator: ", ") + " and their masks.\n"
        }
        return out
    }

    /// exp(-slope) of the least-squares line through (k, log norm): how many times smaller
    /// the gradient gets per block on the path; nil with fewer than two lengths.
    static func decayPerBlock(_ points: [(k: Double, norm: Double)]) -> Double? {
        guard points.count >= 2 else { return nil }
        let xs = points.map(\.k), ys = points.map { log($0.norm) }
        let mx = Statistics.mean(xs), my = Statistics.mean(ys)
        let sxx = xs.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }
        guard sxx > 0 else { return nil }
        let slope = zip(xs, ys).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) } / sxx
        return exp(-slope)
    }
}
