import ArgumentParser
import DepthLens
import Foundation

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The standard study in one results folder: eval, single and k-block lesions, ensemble, depth and paths, with CSVs, SVG plots and summary.md.",
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

    @Option(help: "Largest number of random blocks deleted in the k-block lesion.")
    var maxK = 10

    @Option(help: "Trials per k and per depth.")
    var trials = 3

    @Option(help: "Ensemble members.")
    var members = 8

    func validate() throws {
        guard maxK >= 0 else { throw ValidationError("--max-k must be zero or more.") }
        guard trials >= 1 else { throw ValidationError("--trials must be at least 1.") }
        guard members >= 1 else { throw ValidationError("--members must be at least 1.") }
        // k stops at the number of blocks (at most 10,000 here, before the network is known);
        // the depth part evaluates 9 depths.
        try SizeBounds.check(flag: "--max-k, --trials", [(min(maxK, 10_000) + 9, "values of k and depths"), (trials, "trials")])
    }

    func run() throws {
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
            if !limited.quiet { FileHandle.standardError.write(Data("report: \(name) done in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s\n".utf8)) }
            return result
        }
        let parameters = [("max k", "\(maxK)"), ("trials", "\(trials)"), ("members", "\(members)"), ("batch size", "\(context.batchSize)")]
        try limited.journaled(context, folder: folder, analysis: "report", parameters: parameters) { context in
            // The default metrics are the member ones here; the user's --metric list is kept
            // whole (member evaluation skips the ensemble-scope metrics in it).
            var memberContext = context
            if limited.metrics.isEmpty { memberContext.metrics = AnalysisOptions.memberMetrics }
            let lesionTable = try timed("lesion") {
                try LesionAnalysis.run(memberContext, lesions: LesionAnalysis.singleBlocks(count: count)
                    + LesionAnalysis.randomBlocks(count: count, maxK: maxK, trials: trials, seed: limited.seed).filter { !$0.dropped.isEmpty })
            }
            let ensembleTable = try timed("ensemble") { try EnsembleAnalysis.run(context, members: members, granularity: .pass) }
            let depths = evenlySpacedDepths(count: count, steps: 8)
            let depthTable = try timed("depth") { try DepthAnalysis.run(memberContext, depths: depths, trials: trials) }
            let pathsTable = PathsAnalysis.run(survival: context.survival, checkpoint: context.checkpoint.path, schedule: context.scheduleName)
            var files: [String] = []
            for table in [lesionTable, ensembleTable, depthTable, pathsTable] {
                files += try AnalysisPlots.writeAll(table, to: folder)
            }
            let seconds = Date().timeIntervalSince(started)
            let summary = ReportSummary.markdown(context: context, lesion: lesionTable, ensemble: ensembleTable, depth: depthTable,
                                                 paths: pathsTable, seconds: seconds, timings: timings)
            try AtomicFile.write(Data(summary.utf8), to: "\(folder)/summary.md")
            files.append("\(folder)/summary.md")
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
                         paths: ResultTable, seconds: Double, timings: [(String, Double)]) -> String {
        func value(_ table: ResultTable, _ experiment: Experiment?, _ metric: String) -> Double? {
            experiment.flatMap { table.value(metric, of: $0) }
        }
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a" }
        func num(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
        let ckpt = context.checkpoint
        let blocks = ckpt.architecture.blocks
        let deterministic = Experiment.deterministic(rule: context.rule)
        var out = "# DepthLens report\n\n"
        out += "- checkpoint: `\(ckpt.path)` (\(blocks.count) blocks, \(ckpt.architecture.block.rawValue) blocks)\n"
        out += "- data: `\(context.source.name)`, \(context.source.count) images\n"
        out += "- schedule: `\(context.scheduleName)`; test-time rule: \(context.rule.rawValue); seed \(context.seed)\n"
        // A resumed run times only its own session: the journal keeps units, not clocks.
        let resumed = context.journal?.resumedUnits ?? 0
        let session = resumed > 0 ? " in this session, resumed from \(resumed) unit(s) saved by an interrupted run, whose time is not counted" : ""
        out += String(format: "- run time: %.1f s%@ (%@)\n\n", seconds, session, timings.map { String(format: "%@ %.1f s", $0.0, $0.1) }.joined(separator: ", "))
        out += "## Deterministic network\n\n| network | error | NLL | ECE |\n|---|---|---|---|\n"
        out += "| \(context.rule.rawValue) rule | \(pct(value(ensemble, deterministic, "accuracy").map { 1 - $0 })) | \(num(value(ensemble, deterministic, "nll"))) | \(num(value(ensemble, deterministic, "ece"))) |\n"
        out += "\n"
        let singles = blocks.compactMap { b in value(lesion, .singleLesion(block: b.index), "accuracy").map { (b, 1 - $0) } }
        if !singles.isEmpty {
            let identity = singles.filter { $0.0.shortcut == .identity }.map(\.1)
            let downsampling = singles.filter { $0.0.shortcut != .identity }.map(\.1)
            let worst = singles.max { $0.1 < $1.1 }!
            out += "## Deleting one block (Veit et al. 2016)\n\n"
            out += "- mean error with one identity-shortcut block deleted: \(pct(identity.isEmpty ? nil : identity.reduce(0, +) / Double(identity.count)))\n"
            out += "- mean error with one downsampling block deleted: \(pct(downsampling.isEmpty ? nil : downsampling.reduce(0, +) / Double(downsampling.count)))\n"
            out += "- most harmful: block \(worst.0.index) (`\(worst.0.keyPrefix.dropLast())`, \(worst.0.shortcut.rawValue)), error \(pct(worst.1))\n\n"
        }
        let kRows = meanAndDeviation(lesion.rows.compactMap { row -> (Double, Double)? in
            guard case .randomLesion(let k, _) = row.experiment, row.metric == "accuracy" else { return nil }
            return (Double(k), 1 - row.value)
        })
        if !kRows.isEmpty {
            out += "## Deleting k random blocks\n\n| k | mean error | sd |\n|---|---|---|\n"
            for r in kRows { out += "| \(Int(r.x)) | \(pct(r.mean)) | \(pct(r.high - r.mean)) |\n" }
            out += "\n"
        }
        let ensembles = ensemble.rows.compactMap { row -> (experiment: Experiment, members: Int)? in
            if case .ensemble(_, let members) = row.experiment { (row.experiment, members) } else { nil }
        }
        let last = ensembles.max { $0.members < $1.members }?.experiment, one = ensembles.first { $0.members == 1 }?.experiment
        out += "## Monte Carlo ensemble of \(ensembles.map(\.members).max() ?? 0) sub-networks\n\n| | error | NLL | ECE | mutual information | disagreement |\n|---|---|---|---|---|---|\n"
        out += "| ensemble | \(pct(value(ensemble, last, "accuracy").map { 1 - $0 })) | \(num(value(ensemble, last, "nll"))) | \(num(value(ensemble, last, "ece"))) | \(num(value(ensemble, last, "mutual_information"))) | \(num(value(ensemble, last, "disagreement"))) |\n"
        out += "| one member | \(pct(value(ensemble, one, "accuracy").map { 1 - $0 })) | \(num(value(ensemble, one, "nll"))) | \(num(value(ensemble, one, "ece"))) | | |\n\n"
        let depthRows = meanAndDeviation(depth.rows.compactMap { row -> (Double, Double)? in
            guard case .fixedDepth(let active, _) = row.experiment, row.metric == "accuracy" else { return nil }
            return (Double(active), 1 - row.value)
        })
        if !depthRows.isEmpty {
            out += "## Error against the number of active blocks\n\n| active blocks | mean error |\n|---|---|\n"
            for r in depthRows { out += "| \(Int(r.x)) | \(pct(r.mean)) |\n" }
            out += "\n"
        }
        out += "## Paths\n\n"
        out += "- expected active blocks under the schedule: \(num(value(paths, .scheduleDistribution, "mean_active_blocks"))) (variance \(num(value(paths, .scheduleDistribution, "variance_active_blocks"))))\n"
        out += "- unrolled view (Binomial(L, 1/2)): mean \(num(value(paths, .unrolledBinomial, "mean_active_blocks")))\n\n"
        out += "Files: `lesion-results.csv`, `ensemble-results.csv`, `depth-results.csv`, `paths-results.csv` (tidy; columns in docs/results-csv.md), the `*-masks.csv` gate masks, and the SVG plots.\n"
        return out
    }
}
