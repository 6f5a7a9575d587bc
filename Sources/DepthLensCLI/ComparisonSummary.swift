import DepthLens
import Foundation

/// The headline numbers of a comparison as Markdown: one column per checkpoint, and for
/// the trial-based parts the paired difference of every other checkpoint against the first.
enum ComparisonSummary {
    static func markdown(contexts: [AnalysisContext], names: [String], tables: ComparisonPlots.Tables,
                         layout: Comparison.Layout) -> String {
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a" }
        func points(_ v: Double?) -> String { v.map { String(format: "%+.2f", 100 * $0) } ?? "n/a" }
        // A value that rounds to zero prints as 0.0000, not -0.0000 (a mutual information of -1e-9).
        func num(_ v: Double?) -> String { v.map { String(format: "%.4f", abs($0) < 5e-5 ? 0 : $0) } ?? "n/a" }
        func row(_ label: String, _ cells: [String]) -> String { "| \(label) | " + cells.joined(separator: " | ") + " |\n" }
        let header = "| | " + names.map { "`\($0)`" }.joined(separator: " | ") + " |\n|---|" + names.map { _ in "---|" }.joined() + "\n"
        let first = contexts[0]
        var out = "# DepthLens comparison\n\n"
        out += "| checkpoint | file | blocks | schedule | test-time rule |\n|---|---|---|---|---|\n"
        for (context, name) in zip(contexts, names) {
            out += "| `\(name)` | `\(context.checkpoint.path)` | \(context.blockCount) | `\(context.scheduleName)` | \(context.rule.rawValue) |\n"
        }
        out += "\n- data: `\(first.source.name)`, \(first.source.count) images; seed \(first.seed)\n"
        out += "- paired: every checkpoint is evaluated on the same images with the same seeded sub-networks (block l deleted, trial t of k blocks deleted, trial t of d active blocks, ensemble member m), and adaptive trials add a round to a k or depth for every checkpoint while any one's interval is too wide\n"
        if names.count > 1 {
            out += "- differences: each checkpoint minus `\(names[0])`, in percentage points, mean over the paired trials with a 95% percentile bootstrap interval\n"
        }
        out += "\n"

        // The deterministic network under each checkpoint's rule (the ensemble part's reference).
        func deterministic(_ i: Int, _ metric: String) -> Double? {
            tables.ensemble[i].value(metric, of: .deterministic(rule: contexts[i].rule))
        }
        out += "## Deterministic network\n\n" + header
        out += row("error", contexts.indices.map { pct(deterministic($0, "accuracy").map { 1 - $0 }) })
        out += row("NLL", contexts.indices.map { num(deterministic($0, "nll")) })
        out += row("ECE", contexts.indices.map { num(deterministic($0, "ece")) })
        out += "\n"

        // One block deleted: mean and median by shortcut kind, the most harmful block.
        let singles = contexts.indices.map { i in
            contexts[i].gateBlocks.compactMap { b in tables.lesion[i].value("accuracy", of: .singleLesion(block: b.index)).map { (block: b, error: 1 - $0) } }
        }
        if singles.contains(where: { !$0.isEmpty }) {
            func stat(_ i: Int, identity: Bool, _ f: ([Double]) -> Double) -> String {
                let errors = singles[i].filter { ($0.block.shortcut == .identity) == identity }.map(\.error)
                return errors.isEmpty ? "n/a" : pct(f(errors))
            }
            out += "## Deleting one block (Veit et al. 2016)\n\n" + header
            out += row("mean error, identity-shortcut block deleted", contexts.indices.map { stat($0, identity: true, Statistics.mean) })
            out += row("median error, identity-shortcut block deleted", contexts.indices.map { stat($0, identity: true, Statistics.median) })
            out += row("mean error, downsampling block deleted", contexts.indices.map { stat($0, identity: false, Statistics.mean) })
            out += row("median error, downsampling block deleted", contexts.indices.map { stat($0, identity: false, Statistics.median) })
            out += row("most harmful block", singles.map { s in
                s.max { $0.error < $1.error }.map { "\($0.block.index) (\(pct($0.error)))" } ?? "n/a"
            })
            out += row("single lesions whose error differs from the full network's (McNemar, p < 0.05)", contexts.indices.map { i in
                let tests = tables.lesion[i].rows.filter { $0.metric == "mcnemar_p" && !$0.recalibrated }
                return tests.isEmpty ? "n/a" : "\(tests.filter { $0.value < 0.05 }.count) of \(tests.count)"
            })
            out += "\n"
        }

        // Trial-based parts: mean error [95% CI] per checkpoint, then the paired differences.
        func trialTable(_ parts: [ResultTable], _ x: String, _ summary: (Int) -> Experiment) -> String {
            let xs = parts[0].rows.compactMap { row -> Int? in
                guard row.metric == "mean_error", !row.recalibrated, row.member == .overTrials, let k = row.k else { return nil }
                return Int(k)
            }
            guard !xs.isEmpty else { return "" }
            func cell(_ row: ResultRow?, _ format: (Double?) -> String) -> String {
                guard let row else { return "n/a" }
                guard let low = row.interval?.low, let high = row.interval?.high else { return format(row.value) }
                return "\(format(row.value)) [\(format(low)), \(format(high))]"
            }
            var out = "| \(x) | trials | " + names.map { "`\($0)` mean error [95% CI]" }.joined(separator: " | ")
                + names.dropFirst().map { " | `\($0)` - `\(names[0])` [95% CI]" }.joined() + " |\n"
            out += "|---|---|" + String(repeating: "---|", count: 2 * names.count - 1) + "\n"
            for k in xs {
                func find(_ table: ResultTable, _ metric: String) -> ResultRow? {
                    table.rows.first { $0.experiment == summary(k) && !$0.recalibrated && $0.metric == metric }
                }
                let mean = find(parts[0], "mean_error")
                let trials = mean?.interval?.method == "wilson" ? 1 : mean?.interval?.n ?? 0
                out += "| \(k) | \(trials) | " + parts.map { cell(find($0, "mean_error"), pct) }.joined(separator: " | ")
                    + parts.dropFirst().map { " | " + cell(find($0, "mean_error_difference"), points) }.joined() + " |\n"
            }
            return out + "\n"
        }
        let kTable = trialTable(tables.lesion, "k") { .randomLesionSummary(k: $0) }
        if !kTable.isEmpty { out += "## Deleting k random blocks (the same blocks on each)\n\n" + kTable }

        let sizes = tables.ensemble[0].rows.compactMap { row -> Int? in
            if case .ensemble(_, let members) = row.experiment { members } else { nil }
        }
        if let most = sizes.max() {
            let ensemble = Experiment.ensemble(granularity: .pass, members: most), one = Experiment.ensemble(granularity: .pass, members: 1)
            out += "## Monte Carlo ensemble of \(most) sub-networks (member m the same draw on each)\n\n" + header
            out += row("ensemble error", tables.ensemble.map { pct($0.value("accuracy", of: ensemble).map { 1 - $0 }) })
            out += row("ensemble NLL", tables.ensemble.map { num($0.value("nll", of: ensemble)) })
            out += row("ensemble ECE", tables.ensemble.map { num($0.value("ece", of: ensemble)) })
            out += row("mutual information", tables.ensemble.map { num($0.value("mutual_information", of: ensemble)) })
            out += row("disagreement", tables.ensemble.map { num($0.value("disagreement", of: ensemble)) })
            out += row("one member's error", tables.ensemble.map { pct($0.value("accuracy", of: one).map { 1 - $0 }) })
            out += "\n"
        }

        let depthTable = trialTable(tables.depth, "active blocks") { .fixedDepthSummary(active: $0) }
        if !depthTable.isEmpty { out += "## Error against the number of active blocks (the same blocks on each)\n\n" + depthTable }

        out += "## Paths\n\n" + header
        out += row("expected active blocks under the schedule", tables.paths.map { num($0.value("mean_active_blocks", of: .scheduleDistribution)) })
        out += row("variance of active blocks", tables.paths.map { num($0.value("variance_active_blocks", of: .scheduleDistribution)) })
        out += "\n"
        out += "Intervals: percentile bootstrap over trials (\(Statistics.bootstrapResamples) resamples; for differences over the paired trials); Wilson over the images where one network is evaluated once (trials 1).\n\n"
        switch layout {
        case .compare:
            out += "Files: `compare-results.csv` (every part of every checkpoint; tidy, columns in docs/results-csv.md, `checkpoint` tells them apart, `versus` names the checkpoint a difference is taken against), `compare-masks-NAME.csv` per checkpoint, and the overlay plots `compare-*.svg`.\n"
        case .report:
            out += "Files: `lesion-results.csv`, `ensemble-results.csv`, `depth-results.csv`, `paths-results.csv` (every checkpoint's rows; tidy, columns in docs/results-csv.md, `checkpoint` tells them apart, `versus` names the checkpoint a difference is taken against), `PART-masks-NAME.csv` per checkpoint, and the overlay plots `compare-*.svg`.\n"
        }
        return out
    }
}
