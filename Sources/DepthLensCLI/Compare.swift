import ArgumentParser
import DepthLens
import Foundation

/// `depthlens compare A.h5 B.h5 ...`: the same lesions on every checkpoint, paired (the
/// same seeded masks), in one tidy CSV with a `checkpoint` column and overlay plots.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Checkpoints side by side: the same seeded lesions on each (paired), one CSV, overlay plots.",
        discussion: """
            The checkpoints must have the same number of blocks, so that deleting block l, or \
            trial t of k random blocks, is the same lesion on each (trial t of k is drawn from \
            the seed alone). Adaptive trials (the default) may give the checkpoints different \
            trial counts; the first trials are then shared. Unless --limit says otherwise, \
            the first 2,000 images are used, as in report.
            """)

    @OptionGroup var options: AnalysisOptions

    @Argument(help: ArgumentHelp("The other checkpoints.", valueName: "checkpoint"))
    var others: [String] = []

    @Option(help: "Largest number of random blocks deleted.")
    var maxK = 10

    @OptionGroup var trialOptions: TrialOptions

    func validate() throws {
        guard !others.isEmpty else { throw ValidationError("compare needs at least two checkpoints.") }
        guard maxK >= 0 else { throw ValidationError("--max-k must be zero or more.") }
        // k stops at the number of blocks (at most 10,000 here, before the networks are known).
        try SizeBounds.check(flag: "--max-k, --trials", [(min(maxK, 10_000), "values of k"), (trialOptions.mostTrials, "trials")])
        if options.shard != nil {
            throw ValidationError("--shard: compare does not shard; shard `lesion` on each checkpoint instead (docs/scale-out.md).")
        }
    }

    func run() throws {
        var limited = options
        if limited.data.limit == nil { limited.data.limit = 2000 }
        let paths = [options.checkpoint] + others
        var contexts: [AnalysisContext] = []
        for path in paths {
            var one = limited
            one.checkpoint = path
            var context = try one.context(analysis: "compare")
            if limited.metrics.isEmpty { context.metrics = AnalysisOptions.memberMetrics }
            if let first = contexts.first, first.blockCount != context.blockCount {
                throw CLIError("\(path) has \(context.blockCount) blocks and \(first.checkpoint.path) \(first.blockCount): compare pairs lesions block by block, so it needs the same number of blocks")
            }
            contexts.append(context)
        }
        let folder = try limited.folder(default: "compare")
        var tables: [ResultTable] = []
        for context in contexts {
            let count = context.blockCount
            var table = try LesionAnalysis.run(context, lesions: LesionAnalysis.singleBlocks(count: count))
            if maxK >= 1 {
                table.merge(try LesionAnalysis.runRandom(context, candidates: Array(1...count), ks: 1...maxK, plan: trialOptions.plan(options)))
            }
            table.append(contentsOf: TrialStatistics.rows(for: table, images: context.source.count))
            tables.append(table)
        }
        var files = ["\(folder)/compare-results.csv"]
        try AtomicFile.write(Data(ResultTable.resultsCSV(of: tables).utf8), to: files[0])
        for (table, path) in zip(tables, paths) {
            let name = Self.name(path)
            try AtomicFile.write(Data(table.masksCSV.utf8), to: "\(folder)/compare-masks-\(name).csv")
            files.append("\(folder)/compare-masks-\(name).csv")
        }
        for (file, plot) in AnalysisPlots.overlays(tables, names: paths.map(Self.name), options: plotOptions(contexts[0])) {
            try plot.write(to: "\(folder)/\(file)")
            files.append("\(folder)/\(file)")
        }
        if limited.json {
            printJSON(["checkpoints": zip(paths, tables).map { ["checkpoint": $0, "results": summaryJSON($1)] }])
        } else {
            for (path, table) in zip(paths, tables) {
                let means = table.rows.filter { $0.metric == "mean_error" && $0.member == .overTrials }
                    .map { "k=\(Int($0.k ?? 0)) \(String(format: "%.2f%%", 100 * $0.value))" }
                print("\(path): \(means.joined(separator: ", "))")
            }
            print("Wrote " + files.joined(separator: ", "))
        }
    }

    /// A checkpoint's file name without folder and extension, for file names and legends.
    static func name(_ path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return file.hasSuffix(".h5") ? String(file.dropLast(3)) : file
    }
}
