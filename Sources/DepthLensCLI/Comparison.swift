import ArgumentParser
import DepthLens
import Foundation

/// Several checkpoints side by side, as `compare A.h5 B.h5 ...` and `report A.h5 B.h5 ...`
/// run them: the report's parts (single and k-block lesions, ensemble, error against
/// depth, paths) on every checkpoint, paired: the same seeded sub-networks on each, and
/// adaptive trials added in rounds that every checkpoint gets (``TrialPlan``). The tidy
/// CSVs name each row's checkpoint, the paired differences name the first checkpoint in
/// `versus`, and the plots overlay the checkpoints.
///
/// One journal holds every checkpoint's units (each under its own namespace,
/// ``AnalysisContext/unitNamespace``), with every checkpoint's content fingerprint: an
/// interrupted comparison resumes with `--resume` to the same bytes.
struct Comparison {
    /// Where the results go: `compare` writes one `compare-results.csv`, `report` one CSV
    /// per part (`lesion-results.csv`, ...), as a single-checkpoint report does.
    enum Layout { case compare, report }

    var layout: Layout
    /// The flags; `checkpoint` is the first checkpoint.
    var options: AnalysisOptions
    /// Every checkpoint, the first one first.
    var paths: [String]
    var maxK: Int
    var trialOptions: TrialOptions
    var members: Int
    var yScale: LinePlot.YScale

    var command: String { layout == .compare ? "compare" : "report" }

    /// Depths of the error-against-depth part, as in a single report.
    static let depthSteps = 8

    /// What flags alone can refuse (exit 64), for both commands.
    static func validate(paths: [String], options: AnalysisOptions, command: String) throws {
        var seen: [String: String] = [:]
        for path in paths {
            let standard = URL(fileURLWithPath: path).standardizedFileURL.path
            if let before = seen[standard] {
                throw ValidationError("\(path): this checkpoint is given twice (also as \(before)); a comparison needs different checkpoints")
            }
            seen[standard] = path
        }
        if options.shard != nil {
            throw ValidationError("--shard: \(command) of several checkpoints does not shard; shard `report` or `lesion` on each checkpoint instead (docs/scale-out.md).")
        }
    }

    /// The factors of the number of sub-networks whose results a comparison keeps, for
    /// ``SizeBounds``: k values and depths, trials, checkpoints.
    static func sizeFactors(maxK: Int, trials: Int, checkpoints: Int) -> [(Int, String)] {
        // k stops at the number of blocks (at most 10,000 here, before the networks are
        // known); the depth part evaluates 9 depths.
        [(min(maxK, 10_000) + depthSteps + 1, "values of k and depths"), (trials, "trials"), (checkpoints, "checkpoints")]
    }

    /// A checkpoint's short name: its file name without `.h5`, with as many parent folders
    /// (joined by `_`) as it takes to tell the checkpoints apart. For legends and file names.
    static func names(_ paths: [String]) -> [String] {
        let components = paths.map { path -> [String] in
            var parts = path.split(separator: "/").map(String.init)
            if let last = parts.last, last.hasSuffix(".h5"), last.count > 3 { parts[parts.count - 1] = String(last.dropLast(3)) }
            return parts.isEmpty ? [path] : parts
        }
        let deepest = components.map(\.count).max() ?? 1
        for depth in 1...max(deepest, 1) {
            let names = components.map { $0.suffix(depth).joined(separator: "_") }
            if Set(names).count == names.count { return names }
        }
        return components.enumerated().map { "\($0.offset + 1)_" + $0.element.joined(separator: "_") }
    }

    /// Refuses checkpoints a comparison cannot pair: a different number of blocks, of
    /// classes or of input channels (checked on the files, before any data is read).
    static func checkCompatible(_ checkpoint: Checkpoint, with first: Checkpoint) throws {
        let (mine, theirs) = (checkpoint.architecture, first.architecture)
        if mine.blockCount != theirs.blockCount {
            throw incompatible(checkpoint.path, first.path, "number of blocks", "\(mine.blockCount) blocks", "\(theirs.blockCount)")
        }
        if mine.numClasses != theirs.numClasses {
            throw incompatible(checkpoint.path, first.path, "classes", "\(mine.numClasses) classes", "\(theirs.numClasses)")
        }
        if mine.inChannels != theirs.inChannels {
            throw incompatible(checkpoint.path, first.path, "input shape", "\(mine.inChannels) input channels", "\(theirs.inChannels)")
        }
    }

    /// Refuses contexts a comparison cannot pair: a different number of gates (``--unit
    /// branch`` on some), or data read differently (count or image shape).
    static func checkCompatible(_ context: AnalysisContext, with first: AnalysisContext) throws {
        let (a, b) = (first.checkpoint.path, context.checkpoint.path)
        if context.blockCount != first.blockCount {
            throw incompatible(b, a, "number of gates", "\(context.blockCount) gates", "\(first.blockCount)")
        }
        func shape(_ s: any ImageSource) -> String { "\(s.count) images of \(s.channels)x\(s.height)x\(s.width)" }
        if shape(context.source) != shape(first.source) {
            throw incompatible(b, a, "input shape", "the data as \(shape(context.source))", "as \(shape(first.source))")
        }
    }

    /// `b` has `mine` and `a` `theirs`: the one-line refusal naming both files.
    static func incompatible(_ b: String, _ a: String, _ what: String, _ mine: String, _ theirs: String) -> CLIError {
        CLIError("\(b) has \(mine) and \(a) \(theirs): a comparison runs the same sub-networks on the same images on each checkpoint, so it needs the same \(what)")
    }

    func run() throws {
        var limited = options
        if limited.data.limit == nil { limited.data.limit = 2000 }
        let started = Date()
        // Every file is checked against the first before any data is read.
        var checkpoints: [Checkpoint] = []
        for path in paths {
            let checkpoint = try limited.architecture.load(path)
            if let first = checkpoints.first { try Self.checkCompatible(checkpoint, with: first) }
            checkpoints.append(checkpoint)
        }
        var contexts: [AnalysisContext] = []
        for (path, checkpoint) in zip(paths, checkpoints) {
            var one = limited
            one.checkpoint = path
            let context = try one.context(analysis: command, ensemble: true, loaded: checkpoint)
            if let first = contexts.first { try Self.checkCompatible(context, with: first) }
            // The ensemble part's members are checked against memory now, not after the lesion part.
            do {
                try EnsembleAnalysis.checkMemory(context, members: members, granularity: .pass)
            } catch let error as EnsembleError {
                throw CLIError("--members: \(error)")
            }
            contexts.append(context)
        }
        let folder = try limited.folder(default: command)
        let names = Self.names(paths)
        try journaled(contexts, folder: folder, options: limited) { contexts in
            let tables = try compute(contexts, options: limited)
            guard !limited.dryRun else { return }
            var files = try write(tables, names: names, contexts: contexts, folder: folder)
            if !limited.quiet {
                let resumed = contexts[0].journal?.resumedUnits ?? 0
                let session = resumed > 0 ? " in this session, resumed from \(resumed) unit(s) saved by an interrupted run, whose time is not counted" : ""
                FileHandle.standardError.write(Data(String(format: "%@: run time %.1f s%@\n", command, Date().timeIntervalSince(started), session).utf8))
            }
            let summary = ComparisonSummary.markdown(contexts: contexts, names: names, tables: tables, layout: layout)
            try AtomicFile.write(Data(summary.utf8), to: "\(folder)/summary.md")
            files.append("\(folder)/summary.md")
            let plots = try files.filter { $0.hasSuffix(".svg") }.map { path in
                (file: String(path.split(separator: "/").last ?? ""), svg: try String(contentsOfFile: path, encoding: .utf8))
            }
            let title = "DepthLens comparison: " + names.joined(separator: " vs ")
            try AtomicFile.write(Data(ReportPage.html(title: title, summary: summary, plots: plots).utf8), to: "\(folder)/index.html")
            files.append("\(folder)/index.html")
            if limited.json {
                printJSON(["checkpoints": zip(paths, names).enumerated().map { i, pair -> [String: Any] in
                    ["checkpoint": pair.0, "name": pair.1, "lesion": summaryJSON(tables.lesion[i]), "ensemble": summaryJSON(tables.ensemble[i]),
                     "depth": summaryJSON(tables.depth[i]), "paths": summaryJSON(tables.paths[i])]
                }])
            } else {
                print(summary)
                print("Wrote \(files.count) files to \(folder)/")
            }
        }
    }

    /// Every part on every checkpoint, paired. With planning contexts (a dry run) the
    /// tables are placeholders.
    func compute(_ contexts: [AnalysisContext], options: AnalysisOptions) throws -> ComparisonPlots.Tables {
        let count = contexts[0].blockCount
        let images = contexts[0].source.count
        let plan = trialOptions.plan(options)
        // The default metrics are the member ones in the lesion and depth parts (as in report).
        let memberContexts = contexts.map { context -> AnalysisContext in
            var member = context
            if options.metrics.isEmpty { member.metrics = AnalysisOptions.memberMetrics }
            return member
        }
        var tables = ComparisonPlots.Tables()
        tables.lesion = try memberContexts.map { try LesionAnalysis.run($0, lesions: LesionAnalysis.singleBlocks(count: count)) }
        if maxK >= 1 {
            let random = try LesionAnalysis.runRandom(memberContexts, candidates: Array(1...count), ks: 1...maxK, plan: plan)
            for i in tables.lesion.indices { tables.lesion[i].merge(random[i]) }
        }
        tables.ensemble = try contexts.map { try EnsembleAnalysis.run($0, members: members, granularity: .pass) }
        tables.depth = try DepthAnalysis.run(memberContexts, depths: evenlySpacedDepths(count: count, steps: Self.depthSteps), plan: plan)
        tables.paths = contexts.map { PathsAnalysis.run(survival: $0.survival, checkpoint: $0.checkpoint.path, schedule: $0.scheduleName) }
        for i in contexts.indices {
            tables.lesion[i].append(contentsOf: TrialStatistics.rows(for: tables.lesion[i], images: images))
            tables.depth[i].append(contentsOf: TrialStatistics.rows(for: tables.depth[i], images: images))
        }
        for i in contexts.indices.dropFirst() {
            tables.lesion[i].append(contentsOf: PairedDifferences.rows(for: tables.lesion[i], versus: tables.lesion[0]))
            tables.depth[i].append(contentsOf: PairedDifferences.rows(for: tables.depth[i], versus: tables.depth[0]))
        }
        return tables
    }

    /// The CSVs, masks and overlay plots; returns the files written.
    func write(_ tables: ComparisonPlots.Tables, names: [String], contexts: [AnalysisContext], folder: String) throws -> [String] {
        var files: [String] = []
        func save(_ text: String, _ file: String) throws {
            try AtomicFile.write(Data(text.utf8), to: "\(folder)/\(file)")
            files.append("\(folder)/\(file)")
        }
        let byCheckpoint = contexts.indices.map { i in [tables.lesion[i], tables.ensemble[i], tables.depth[i], tables.paths[i]] }
        switch layout {
        case .compare:
            try save(ResultTable.resultsCSV(of: byCheckpoint.flatMap { $0 }), "compare-results.csv")
            for (parts, name) in zip(byCheckpoint, names) {
                var masks = parts[0]
                for part in parts.dropFirst() { masks.merge(part) }
                try save(masks.masksCSV, "compare-masks-\(name).csv")
            }
        case .report:
            for (part, perCheckpoint) in [("lesion", tables.lesion), ("ensemble", tables.ensemble), ("depth", tables.depth), ("paths", tables.paths)] {
                try save(ResultTable.resultsCSV(of: perCheckpoint), "\(part)-results.csv")
                for (table, name) in zip(perCheckpoint, names) where !table.masks.isEmpty {
                    try save(table.masksCSV, "\(part)-masks-\(name).csv")
                }
            }
        }
        // The marks say where every checkpoint downsamples (the architectures may differ there).
        var options = plotOptions(contexts[0], yScale: yScale)
        options.downsamplingBlocks = options.downsamplingBlocks.filter { block in
            contexts.allSatisfy { plotOptions($0).downsamplingBlocks.contains(block) }
        }
        for (file, plot) in ComparisonPlots.plots(tables, names: names, options: options) {
            try plot.write(to: "\(folder)/\(file)")
            files.append("\(folder)/\(file)")
        }
        return files
    }

    /// Runs `body` on the contexts with one journal in `folder` (as
    /// ``AnalysisOptions/journaled(_:folder:analysis:parameters:files:_:)`` does for one
    /// checkpoint): the configuration names every checkpoint with its content fingerprint,
    /// schedule and rule, and each checkpoint's units have their own namespace. A dry run
    /// plans every checkpoint's work and prints it.
    func journaled(_ contexts: [AnalysisContext], folder: String, options: AnalysisOptions,
                   _ body: ([AnalysisContext]) throws -> Void) throws {
        func namespaced(_ context: AnalysisContext, _ i: Int) -> AnalysisContext {
            var context = context
            context.unitNamespace = "checkpoint-\(i + 1)."
            return context
        }
        if options.dryRun {
            let plan = WorkPlan()
            try body(contexts.enumerated().map { i, context in
                var planning = namespaced(context, i)
                planning.scope = .planning(plan)
                planning.progress = nil
                return planning
            })
            return DryRun.print(plan, analysis: "\(command) of \(contexts.count) checkpoints", context: contexts[0], shards: nil)
        }
        let first = contexts[0]
        let data = options.data
        var fields: [(String, String)] = [("analysis", "\(command) of \(contexts.count) checkpoints")]
        var files: [String] = []
        for (i, context) in contexts.enumerated() {
            fields.append(("checkpoint \(i + 1)", context.checkpoint.path))
            fields.append(("schedule \(i + 1)", context.scheduleName))
            fields.append(("survival probabilities \(i + 1)", context.survival.map { "\($0)" }.joined(separator: ",")))
            fields.append(("rule \(i + 1)", context.rule.rawValue))
            for file in [context.checkpoint.path] + (try data.request(for: context.checkpoint).files()) where !files.contains(file) {
                files.append(file)
            }
        }
        fields.append(("data", "\(first.source.name) (\(first.source.count) images, offset \(data.offset), limit \(data.limit.map(String.init) ?? "none"))"))
        // What the files hold, not their size and time (ProgressJournal.checkUnchanged).
        let fingerprints = try RunFingerprints.of(files)
        fields += ProgressJournal.fingerprintFields(fingerprints)
        if first.evaluator.network.hasSeveralBranchesPerBlock { fields.append(("unit", first.evaluator.unit.rawValue)) }
        fields.append(("metrics", first.metrics.joined(separator: " ")))
        fields.append(("seed", "\(first.seed)"))
        fields += [("max k", "\(maxK)"), ("trials", trialOptions.description), ("members", "\(members)"), ("batch size", "\(first.batchSize)")]
        try options.runJournaled(first, folder: folder, analysis: command, fields: fields, fingerprints: fingerprints,
                                 resume: options.resume, keep: false) { journaled in
            try body(contexts.enumerated().map { i, context in
                var context = namespaced(context, i)
                context.journal = journaled.journal
                context.stopRequest = journaled.stopRequest
                context.scope = journaled.scope
                return context
            })
        }
    }
}
