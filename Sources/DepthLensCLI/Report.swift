import ArgumentParser
import DepthLens
import Foundation

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The standard study in one results folder: eval, single and k-block lesions, ensemble, depth and paths, with CSVs, SVG plots, summary.md and index.html.",
        discussion: """
            On the bundled defaults (the README's main job): `depthlens report data/fmnist-timm27.h5` \
            evaluates the installed Fashion-MNIST test set. Unless --limit says otherwise, the first 2,000 \
            test images are used, so that the study finishes in minutes on two cores; --limit 10000 uses \
            them all.

            --metric replaces the default metrics in every part (the lesion and depth parts compute \
            the member-scope ones among them); summary.md shows errors, NLL and ECE when accuracy, nll \
            and calibration are among them, and n/a otherwise. With --json, one JSON document holds \
            every table the report computes (lesion, ensemble, depth, paths), each as the analysis' \
            own --json prints it.
            """)

    @OptionGroup var options: AnalysisOptions

    @Argument(help: ArgumentHelp("More checkpoints: the comparison of them all, paired (as `compare`, in report's layout).", valueName: "checkpoint"))
    var others: [String] = []

    @Option(help: "Largest number of random blocks deleted in the k-block lesion.")
    var maxK = 10

    @OptionGroup var trialOptions: TrialOptions

    @Option(help: "Ensemble members.")
    var members = 8

    @Option(help: "The y axis of the single-block plot: linear, log, or clip (ends at Q3 + 3 IQR of the errors; higher ones are marked on the top edge).")
    var yScale: LinePlot.YScale = .linear

    func validate() throws {
        guard maxK >= 0 else { throw ValidationError("--max-k must be zero or more.") }
        guard members >= 1 else { throw ValidationError("--members must be at least 1.") }
        if !others.isEmpty {
            // Several checkpoints: the comparison in report's layout (Comparison), which does not shard.
            try Comparison.validate(paths: [options.checkpoint] + others, options: options, command: "report")
            return try SizeBounds.check(flag: "--max-k, --trials", Comparison.sizeFactors(maxK: maxK, trials: trialOptions.mostTrials, checkpoints: 1 + others.count))
        }
        try trialOptions.checkShardable(options)
        // k stops at the number of blocks (at most 10,000 here, before the network is known);
        // the depth part evaluates 9 depths.
        try SizeBounds.check(flag: "--max-k, --trials", [(min(maxK, 10_000) + 9, "values of k and depths"), (trialOptions.mostTrials, "trials")])
    }

    func run() throws {
        if !others.isEmpty {
            return try Comparison(layout: .report, options: options, paths: [options.checkpoint] + others, maxK: maxK,
                                  trialOptions: trialOptions, members: members, yScale: yScale).run()
        }
        var limited = options
        if limited.data.limit == nil { limited.data.limit = 2000 }
        let started = Date()
        let context = try limited.context(analysis: "report", ensemble: true)
        // The ensemble part's members are checked against memory now, not after the lesion part.
        do {
            try EnsembleAnalysis.checkMemory(context, members: members, granularity: .pass)
        } catch let error as EnsembleError {
            throw CLIError("--members: \(error)")
        }
        let folder = try limited.folder(default: "report")
        let count = context.blockCount
        var timings: [(String, Double)] = []
        func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            let t0 = Date()
            let result = try body()
            timings.append((name, Date().timeIntervalSince(t0)))
            if !limited.quiet, !limited.writesNoResults { FileHandle.standardError.write(Data("report: \(name) done in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s\n".utf8)) }
            return result
        }
        let parameters = [("max k", "\(maxK)"), ("trials", trialOptions.description), ("members", "\(members)"), ("batch size", "\(context.batchSize)")]
        try limited.journaled(context, folder: folder, analysis: "report", parameters: parameters) { context in
            // The default metrics are the member ones here; the user's --metric list is kept
            // whole (member evaluation skips the ensemble-scope metrics in it).
            var memberContext = context
            if limited.metrics.isEmpty { memberContext.metrics = AnalysisOptions.memberMetrics }
            let lesionTable = try timed("lesion") {
                var table = try LesionAnalysis.run(memberContext, lesions: LesionAnalysis.singleBlocks(count: count))
                if maxK >= 1 {
                    table.merge(try LesionAnalysis.runRandom(memberContext, candidates: Array(1...count), ks: 1...maxK, plan: trialOptions.plan(options)))
                }
                table.append(contentsOf: TrialStatistics.rows(for: table, images: context.source.count))
                return table
            }
            let ensembleTable = try timed("ensemble") { try EnsembleAnalysis.run(context, members: members, granularity: .pass) }
            let depths = evenlySpacedDepths(count: count, steps: 8)
            let depthTable = try timed("depth") {
                var table = try DepthAnalysis.run(memberContext, depths: depths, plan: trialOptions.plan(options))
                table.append(contentsOf: TrialStatistics.rows(for: table, images: context.source.count))
                return table
            }
            let pathsTable = PathsAnalysis.run(survival: context.survival, checkpoint: context.checkpoint.path, schedule: context.scheduleName)
            // A plan's or a shard's tables are partial: the journal is what a shard keeps.
            guard !limited.writesNoResults else { return }
            var files: [String] = []
            for table in [lesionTable, ensembleTable, depthTable, pathsTable] {
                files += try AnalysisPlots.writeAll(table, to: folder, options: plotOptions(context, yScale: yScale))
            }
            // The run time goes to standard error, not into summary.md: the results files of a
            // run depend on nothing but its inputs, so a merge of shards writes the same bytes
            // (docs/scale-out.md).
            let seconds = Date().timeIntervalSince(started)
            if !limited.quiet {
                // A resumed run times only its own session: the journal keeps units, not clocks.
                let resumed = context.journal?.resumedUnits ?? 0
                let session = resumed > 0 ? " in this session, resumed from \(resumed) unit(s) saved by an interrupted run, whose time is not counted" : ""
                FileHandle.standardError.write(Data(String(format: "report: run time %.1f s%@ (%@)\n", seconds, session,
                                                           timings.map { String(format: "%@ %.1f s", $0.0, $0.1) }.joined(separator: ", ")).utf8))
            }
            let summary = ReportSummary.markdown(context: context, lesion: lesionTable, ensemble: ensembleTable, depth: depthTable,
                                                 paths: pathsTable)
            try AtomicFile.write(Data(summary.utf8), to: "\(folder)/summary.md")
            files.append("\(folder)/summary.md")
            let plots = try files.filter { $0.hasSuffix(".svg") }.map { path in
                (file: String(path.split(separator: "/").last ?? ""), svg: try String(contentsOfFile: path, encoding: .utf8))
            }
            let page = ReportPage.html(title: "DepthLens report: \(context.checkpoint.path)", summary: summary, plots: plots)
            try AtomicFile.write(Data(page.utf8), to: "\(folder)/index.html")
            files.append("\(folder)/index.html")
            if limited.json {
                printJSON(["lesion": summaryJSON(lesionTable), "ensemble": summaryJSON(ensembleTable),
                           "depth": summaryJSON(depthTable), "paths": summaryJSON(pathsTable)])
            } else {
                print(summary)
                print("Wrote \(files.count) files to \(folder)/")
            }
        }
    }
}

/// The headline numbers of a report, as Markdown.
enum ReportSummary {
    static func markdown(context: AnalysisContext, lesion: ResultTable, ensemble: ResultTable, depth: ResultTable,
                         paths: ResultTable) -> String {
        func value(_ table: ResultTable, _ experiment: Experiment?, _ metric: String) -> Double? {
            experiment.flatMap { table.value(metric, of: $0) }
        }
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a" }
        func num(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
        let ckpt = context.checkpoint
        let blocks = context.gateBlocks
        let deterministic = Experiment.deterministic(rule: context.rule)
        var out = "# DepthLens report\n\n"
        let kind = ckpt.architecture.isConvNeXt ? "ConvNeXt" : ckpt.architecture.block.rawValue
        out += "- checkpoint: `\(ckpt.path)` (" + (ckpt.architecture.vit != nil
            ? "\(ckpt.blockCount) transformer blocks, gates per \(context.evaluator.unit.rawValue))\n"
            : "\(blocks.count) blocks, \(kind) blocks)\n")
        out += "- data: `\(context.source.name)`, \(context.source.count) images\n"
        out += "- schedule: `\(context.scheduleName)`; test-time rule: \(context.rule.rawValue); seed \(context.seed)\n"
        out += "\n"
        out += "## Deterministic network\n\n| network | error | NLL | ECE |\n|---|---|---|---|\n"
        out += "| \(context.rule.rawValue) rule | \(pct(value(ensemble, deterministic, "accuracy").map { 1 - $0 })) | \(num(value(ensemble, deterministic, "nll"))) | \(num(value(ensemble, deterministic, "ece"))) |\n"
        out += "\n"
        let singles = blocks.compactMap { b in value(lesion, .singleLesion(block: b.index), "accuracy").map { (b, 1 - $0) } }
        if !singles.isEmpty {
            let identity = singles.filter { $0.0.shortcut == .identity }.map(\.1)
            let downsampling = singles.filter { $0.0.shortcut != .identity }.map(\.1)
            let worst = singles.max { $0.1 < $1.1 }!
            out += "## Deleting one block (Veit et al. 2016)\n\n"
            func mean(_ v: [Double]) -> Double? { v.isEmpty ? nil : Statistics.mean(v) }
            func median(_ v: [Double]) -> Double? { v.isEmpty ? nil : Statistics.median(v) }
            out += "- error with one identity-shortcut block deleted: mean \(pct(mean(identity))), median \(pct(median(identity))) over \(identity.count) blocks\n"
            out += "- error with one downsampling block deleted: mean \(pct(mean(downsampling))), median \(pct(median(downsampling))) over \(downsampling.count) blocks\n"
            let significant = lesion.rows.filter { $0.metric == "mcnemar_p" && !$0.recalibrated && $0.value < 0.05 }.count
            if lesion.rows.contains(where: { $0.metric == "mcnemar_p" }) {
                out += "- single lesions whose error differs from the full network's (McNemar, p < 0.05, not corrected for \(singles.count) tests): \(significant) of \(singles.count)\n"
            }
            // By gate: a transformer block's gate names its block, a branch gate its branch.
            let name = context.evaluator.network.gateNames(context.evaluator.unit)[worst.0.index - 1]
            out += "- most harmful: block \(worst.0.index) (`\(name)`, \(worst.0.shortcut.rawValue)), error \(pct(worst.1))\n\n"
        }
        // Mean and median over trials with their 95% intervals (TrialStatistics' rows).
        func intervalTable(_ table: ResultTable, _ x: String, _ summary: (Int) -> Experiment) -> String {
            let xs = table.rows.compactMap { row -> Int? in
                guard row.metric == "mean_error", !row.recalibrated, row.member == .overTrials, let k = row.k else { return nil }
                return Int(k)
            }
            guard !xs.isEmpty else { return "" }
            func cell(_ row: ResultRow?) -> String {
                guard let row else { return "n/a" }
                guard let low = row.interval?.low, let high = row.interval?.high else { return pct(row.value) }
                return "\(pct(row.value)) [\(pct(low)), \(pct(high))]"
            }
            var out = "| \(x) | trials | mean error [95% CI] | median error [95% CI] |\n|---|---|---|---|\n"
            for k in xs {
                let rows = table.rows.filter { $0.experiment == summary(k) && !$0.recalibrated }
                let mean = rows.first { $0.metric == "mean_error" }, median = rows.first { $0.metric == "median_error" }
                let trials = mean?.interval?.method == "wilson" ? 1 : mean?.interval?.n ?? 0
                out += "| \(k) | \(trials) | \(cell(mean)) | \(cell(median)) |\n"
            }
            return out + "\nIntervals: percentile bootstrap over trials (\(Statistics.bootstrapResamples) resamples); Wilson over the images where one network is evaluated once (trials 1).\n\n"
        }
        let kTable = intervalTable(lesion, "k") { .randomLesionSummary(k: $0) }
        if !kTable.isEmpty {
            out += "## Deleting k random blocks\n\n" + kTable
        }
        let ensembles = ensemble.rows.compactMap { row -> (experiment: Experiment, members: Int)? in
            if case .ensemble(_, let members) = row.experiment { (row.experiment, members) } else { nil }
        }
        let last = ensembles.max { $0.members < $1.members }?.experiment, one = ensembles.first { $0.members == 1 }?.experiment
        out += "## Monte Carlo ensemble of \(ensembles.map(\.members).max() ?? 0) sub-networks\n\n| | error | NLL | ECE | mutual information | disagreement |\n|---|---|---|---|---|---|\n"
        out += "| ensemble | \(pct(value(ensemble, last, "accuracy").map { 1 - $0 })) | \(num(value(ensemble, last, "nll"))) | \(num(value(ensemble, last, "ece"))) | \(num(value(ensemble, last, "mutual_information"))) | \(num(value(ensemble, last, "disagreement"))) |\n"
        out += "| one member | \(pct(value(ensemble, one, "accuracy").map { 1 - $0 })) | \(num(value(ensemble, one, "nll"))) | \(num(value(ensemble, one, "ece"))) | | |\n\n"
        let depthTable = intervalTable(depth, "active blocks") { .fixedDepthSummary(active: $0) }
        if !depthTable.isEmpty {
            out += "## Error against the number of active blocks\n\n" + depthTable
        }
        out += "## Paths\n\n"
        out += "- expected active blocks under the schedule: \(num(value(paths, .scheduleDistribution, "mean_active_blocks"))) (variance \(num(value(paths, .scheduleDistribution, "variance_active_blocks"))))\n"
        out += "- unrolled view (Binomial(L, 1/2)): mean \(num(value(paths, .unrolledBinomial, "mean_active_blocks")))\n\n"
        out += "Files: `lesion-results.csv`, `ensemble-results.csv`, `depth-results.csv`, `paths-results.csv` (tidy; columns in docs/results-csv.md), the `*-masks.csv` gate masks, and the SVG plots.\n"
        return out
    }
}
