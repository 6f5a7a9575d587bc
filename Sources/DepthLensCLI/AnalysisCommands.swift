import ArgumentParser
import DepthLens
import Foundation

/// Writes an analysis' files and prints its summary: the headline columns by default,
/// every column the user's `--metric` list produces when there is one.
func finish(_ table: ResultTable, options: AnalysisOptions, folder: String, plots: AnalysisPlots.Options = .init()) throws {
    // A plan's or a shard's table is partial: the journal is what a shard keeps.
    guard !options.writesNoResults else { return }
    let files = try AnalysisPlots.writeAll(table, to: folder, options: plots)
    let headline = ["active_blocks", "accuracy", "nll", "ece", "brier", "agreement", "kendall_tau",
                    "probability", "mutual_information", "disagreement"]
    printSummary(table, metrics: options.metrics.isEmpty ? headline : nil, json: options.json)
    if !options.json {
        print("\nWrote " + files.joined(separator: ", "))
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw N sub-networks from the schedule (one mask each for the whole pass); each one's active blocks and metrics.")

    @OptionGroup var options: AnalysisOptions

    @Option(help: "Sub-networks to draw.")
    var members = 32

    @OptionGroup var recalibration: RecalibrationOptions

    @OptionGroup var probabilities: SaveProbabilitiesOption

    func validate() throws {
        guard members >= 1 else { throw ValidationError("--members must be at least 1.") }
        try SizeBounds.check(flag: "--members", [(members, "sub-networks")])
        try probabilities.check(options)
    }

    func run() throws {
        let context = try options.context(analysis: "sample")
        let images = try recalibration.source(for: context.checkpoint, normalization: try options.data.normalization())
        let folder = try options.folder(default: "sample")
        let parameters = [("members", "\(members)"), ("recalibration", recalibration.description(images))]
        try options.journaled(context, folder: folder, analysis: "sample", parameters: parameters,
                              files: recalibration.files(for: context.checkpoint)) { context in
            try finish(try SampleAnalysis.run(context, members: members, recalibration: images), options: options, folder: folder, plots: plotOptions(context))
            try probabilities.write(context, members: members, analysis: "sample")
        }
    }
}

struct Ensemble: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A Monte Carlo ensemble of M sub-networks; its metrics as it grows (1, 2, 4, ..., M) beside the deterministic network.")

    @OptionGroup var options: AnalysisOptions

    @Option(help: "Members M.")
    var members = 16

    @Option(help: "When gates are drawn: pass (M fixed sub-networks), batch (per member per batch), sample (per member per example).")
    var granularity: EnsembleAnalysis.Granularity = .pass

    @OptionGroup var probabilities: SaveProbabilitiesOption

    func validate() throws {
        guard members >= 1 else { throw ValidationError("--members must be at least 1.") }
        if probabilities.saveProbabilities != nil, granularity != .pass {
            throw ValidationError("--save-probabilities needs --granularity pass (members with one mask each).")
        }
    }

    func run() throws {
        let context = try options.context(analysis: "ensemble", ensemble: true)
        let folder = try options.folder(default: "ensemble")
        // Units are batches here, so the batch size must match on --resume.
        let parameters = [("members", "\(members)"), ("granularity", granularity.rawValue), ("batch size", "\(context.batchSize)")]
        try options.journaled(context, folder: folder, analysis: "ensemble", parameters: parameters) { context in
            do {
                try finish(try EnsembleAnalysis.run(context, members: members, granularity: granularity), options: options, folder: folder, plots: plotOptions(context))
                try probabilities.write(context, members: members, analysis: "ensemble")
            } catch let error as EnsembleError {
                throw CLIError("--members: \(error)")
            }
        }
    }
}

struct Lesion: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete blocks from the deterministic network: each alone, k at random, explicit lists, or pruning to a depth.",
        discussion: "With no selection flag, runs --single and --random-k 10.")

    @OptionGroup var options: AnalysisOptions

    @Flag(help: "Delete each block alone (and evaluate the full network).")
    var single = false

    @Option(help: "Delete k random blocks for k = 0...K.")
    var randomK: Int?

    @OptionGroup var trialOptions: TrialOptions

    @Option(help: ArgumentHelp("Never delete these blocks in --random-k (a comma list with ranges).", valueName: "blocks"))
    var exclude: String?

    @Flag(help: "In --random-k, delete only blocks the schedule drops in training (survival probability p_l < 1).")
    var droppableOnly = false

    @Option(help: "The y axis of the single-block plot: linear, log, or clip (ends at Q3 + 3 IQR of the errors; higher ones are marked on the top edge).")
    var yScale: LinePlot.YScale = .linear

    @Option(help: ArgumentHelp("Delete exactly these blocks (a comma list with ranges); repeatable.", valueName: "blocks"))
    var drop: [String] = []

    @Option(help: ArgumentHelp("Keep only these blocks, deleting the rest; repeatable.", valueName: "blocks"))
    var keep: [String] = []

    @Option(help: ArgumentHelp("Prune to this many blocks (with --prune-rule).", valueName: "d"))
    var pruneDepth: [Int] = []

    @Option(help: "Pruning rule for --prune-depth (LayerDrop, Fan et al. 2019): every-other (for the rate p = 1 - d/L, delete blocks l with l mod floor(1/p) = 0), evenly-spaced (keep d blocks spread evenly; the default), or greedy (delete the block that hurts a held-out split least, repeatedly); ResNet blocks whose shortcut is not the identity (downsampling) are always kept; ConvNeXt's downsampling is the stage's and stays whichever blocks go.")
    var pruneRule: String?

    @Option(help: "Images held out (the first ones of the data) to choose greedy deletions on; the lesions are then evaluated on the rest (with --prune-rule greedy; default 500).")
    var heldOut: Int?

    @OptionGroup var recalibration: RecalibrationOptions

    func validate() throws {
        if let randomK, randomK < 0 { throw ValidationError("--random-k must be zero or more.") }
        if randomK != nil { try trialOptions.checkShardable(options) }
        try SizeBounds.check(flag: trialOptions.trials == nil ? "--max-trials" : "--trials", [(trialOptions.mostTrials, "trials per k")])
        if let exclude { _ = try parseBlockList(exclude, flag: "--exclude") }
        if let bad = pruneDepth.first(where: { $0 < 0 }) { throw ValidationError("--prune-depth must be zero or more, found \(bad).") }
        if let heldOut, heldOut < 1 { throw ValidationError("--held-out must be at least 1, found \(heldOut).") }
        for list in drop { _ = try parseBlockList(list, flag: "--drop") }
        for list in keep { _ = try parseBlockList(list, flag: "--keep") }
        // Settings that would otherwise be ignored are refused.
        if pruneRule != nil, pruneDepth.isEmpty { throw ValidationError("--prune-rule needs --prune-depth.") }
        if heldOut != nil, pruneRule != "greedy" { throw ValidationError("--held-out needs --prune-rule greedy.") }
    }

    func run() throws {
        var context = try options.context(analysis: "lesion")
        let count = context.blockCount
        let pruneRule = self.pruneRule ?? "evenly-spaced"
        let heldOut = self.heldOut ?? 500
        var greedy: [LesionAnalysis.Lesion] = []
        if pruneRule == "greedy", !pruneDepth.isEmpty, options.dryRun {
            // The search evaluates sub-networks itself: a dry run plans its lesions as
            // evenly spaced ones of the same depths (the same number of sub-networks).
            FileHandle.standardError.write(Data("lesion: dry run: the greedy search on the held-out images is not counted; its lesions are planned as evenly spaced ones of the same depths\n".utf8))
            for depth in pruneDepth {
                let stand = try flagPruneErrors { try LesionAnalysis.prune(blocks: context.checkpoint.architecture.blocks, depth: depth, rule: "evenly-spaced") }
                greedy.append(.init(.pruned(rule: "greedy", depth: depth), dropped: stand.dropped))
            }
        } else if pruneRule == "greedy", !pruneDepth.isEmpty {
            // Choose on the held-out images, report on the others.
            guard heldOut > 0, heldOut < context.source.count else {
                throw CLIError("--held-out must be between 1 and \(context.source.count - 1), the images available")
            }
            let selection = try SubsetSource(context.source, offset: 0, limit: heldOut)
            for depth in pruneDepth {
                let dropped = try flagPruneErrors { try GreedyPrune.choose(context, heldOut: selection, depth: depth) }
                greedy.append(.init(.pruned(rule: "greedy", depth: depth), dropped: dropped))
            }
            context.source = try SubsetSource(context.source, offset: heldOut, limit: nil)
        }
        var lesions: [LesionAnalysis.Lesion] = []
        let selected = single || randomK != nil || !drop.isEmpty || !keep.isEmpty || !pruneDepth.isEmpty
        if single || !selected { lesions += LesionAnalysis.singleBlocks(count: count) }
        let maxK = randomK ?? (selected ? nil : 10)
        if maxK == nil, exclude != nil || droppableOnly {
            throw CLIError("--exclude and --droppable-only choose the blocks of --random-k; give --random-k K")
        }
        let excluded = Set(try exclude.map { try parseBlockList($0, flag: "--exclude") } ?? [])
        if let bad = excluded.first(where: { !(1...count).contains($0) }) {
            throw CLIError("--exclude: \(BlockSelectionError.noSuchBlock(bad, blockCount: count))")
        }
        let candidates = LesionAnalysis.candidates(blockCount: count, survival: context.survival, excluded: excluded, droppableOnly: droppableOnly)
        if maxK != nil, candidates.isEmpty {
            throw CLIError("--random-k: no block may be deleted after --exclude and --droppable-only")
        }
        if let maxK {
            // k stops at the number of candidates; k = 0 is one sub-network.
            try SizeBounds.check(flag: "--random-k, --trials", [(min(maxK, candidates.count), "values of k"), (trialOptions.mostTrials, "trials")])
        }
        for list in drop {
            let blocks = try parseBlockList(list, flag: "--drop")
            if let bad = blocks.first(where: { !(1...count).contains($0) }) {
                throw CLIError("--drop: \(BlockSelectionError.noSuchBlock(bad, blockCount: count))")
            }
            lesions.append(.init(.dropList(list), dropped: blocks))
        }
        for list in keep {
            let kept = Set(try parseBlockList(list, flag: "--keep"))
            if let bad = kept.first(where: { !(1...count).contains($0) }) {
                throw CLIError("--keep: \(BlockSelectionError.noSuchBlock(bad, blockCount: count))")
            }
            lesions.append(.init(.keepList(list), dropped: (1...count).filter { !kept.contains($0) }))
        }
        if pruneRule == "greedy" {
            lesions += greedy
        } else {
            for depth in pruneDepth {
                lesions.append(try flagPruneErrors {
                    try LesionAnalysis.prune(blocks: context.gateBlocks, depth: depth, rule: pruneRule)
                })
            }
        }
        // Identical lesions (the same blocks) are evaluated once.
        var seen = Set<String>()
        lesions = lesions.filter { seen.insert($0.name).inserted }
        let images = try recalibration.source(for: context.checkpoint, normalization: try options.data.normalization())
        let folder = try options.folder(default: "lesion")
        var parameters = [("lesions", lesions.map(\.name).joined(separator: " ")), ("recalibration", recalibration.description(images))]
        if let maxK {
            parameters += [("random k", "0...\(maxK) of blocks \(candidates.map(String.init).joined(separator: ","))"), ("trials", trialOptions.description)]
        }
        try options.journaled(context, folder: folder, analysis: "lesion", parameters: parameters,
                              files: recalibration.files(for: context.checkpoint)) { context in
            var table = try LesionAnalysis.run(context, lesions: lesions, recalibration: images)
            if let maxK {
                // With single lesions, k = 0 is their full network (evaluated once).
                let ks = lesions.contains { $0.experiment == .fullNetwork } && images == nil ? 1...max(1, maxK) : 0...maxK
                if maxK >= ks.lowerBound {
                    table.merge(try LesionAnalysis.runRandom(context, candidates: candidates, ks: ks, plan: trialOptions.plan(options), recalibration: images))
                }
            }
            table.append(contentsOf: TrialStatistics.rows(for: table, images: context.source.count))
            try finish(table, options: options, folder: folder, plots: plotOptions(context, yScale: yScale))
        }
    }
}

struct Depth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Error against the exact number of active blocks (sub-networks drawn uniformly among those of each depth).")

    @OptionGroup var options: AnalysisOptions

    @Option(help: "Depths to evaluate: a comma list with ranges (default: about 12 evenly spaced from 0 to L).")
    var depths: String?

    @OptionGroup var trialOptions: TrialOptions

    @OptionGroup var recalibration: RecalibrationOptions

    func validate() throws {
        let listed = try depths.map { try parseBlockList($0, flag: "--depths") }
        if let bad = listed?.first(where: { $0 < 0 }) { throw ValidationError("--depths: depth \(bad) is negative.") }
        // Without --depths, about 13 depths (evenlySpacedDepths with 12 steps).
        try SizeBounds.check(flag: trialOptions.trials == nil ? "--max-trials" : "--trials", [(listed?.count ?? 13, "depths"), (trialOptions.mostTrials, "trials")])
        try trialOptions.checkShardable(options)
    }

    func run() throws {
        let context = try options.context(analysis: "depth")
        let count = context.blockCount
        let chosen: [Int]
        if let depths {
            chosen = try parseBlockList(depths, flag: "--depths")
            if let bad = chosen.first(where: { !(0...count).contains($0) }) {
                throw CLIError("--depths: \(BlockSelectionError.depthOutOfRange(bad, blockCount: count))")
            }
        } else {
            chosen = evenlySpacedDepths(count: count, steps: 12)
        }
        let images = try recalibration.source(for: context.checkpoint, normalization: try options.data.normalization())
        let folder = try options.folder(default: "depth")
        let parameters = [("depths", chosen.map(String.init).joined(separator: ",")), ("trials", trialOptions.description),
                          ("recalibration", recalibration.description(images))]
        try options.journaled(context, folder: folder, analysis: "depth", parameters: parameters,
                              files: recalibration.files(for: context.checkpoint)) { context in
            var table = try DepthAnalysis.run(context, depths: chosen, plan: trialOptions.plan(options), recalibration: images)
            table.append(contentsOf: TrialStatistics.rows(for: table, images: context.source.count))
            try finish(table, options: options, folder: folder, plots: plotOptions(context))
        }
    }
}

struct Reorder: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Swap shape-compatible blocks within stages at random; error against Kendall's tau (Veit et al. 2016).")

    @OptionGroup var options: AnalysisOptions

    @Option(help: "Numbers of random swaps, comma-separated.")
    var swaps = "0,1,2,4,8,16"

    @Option(help: "Orders per number of swaps.")
    var trials = 3

    func validate() throws {
        guard trials >= 1 else { throw ValidationError("--trials must be at least 1.") }
        let counts = try parseBlockList(swaps, flag: "--swaps")
        try SizeBounds.checkSwaps(counts)
        try SizeBounds.check(flag: "--trials", [(counts.count, "numbers of swaps"), (trials, "trials")])
    }

    func run() throws {
        let counts = try parseBlockList(swaps, flag: "--swaps")
        let context = try options.context(analysis: "reorder")
        let folder = try options.folder(default: "reorder")
        let parameters = [("swaps", counts.map(String.init).joined(separator: ",")), ("trials", "\(trials)")]
        try options.journaled(context, folder: folder, analysis: "reorder", parameters: parameters) { context in
            try finish(try ReorderAnalysis.run(context, swaps: counts, trials: trials), options: options, folder: folder, plots: plotOptions(context))
        }
    }
}

struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The distribution of the number of active blocks under a schedule (exact Poisson-binomial), and the unrolled Binomial(L, 1/2) view. Needs no data.")

    @OptionGroup var options: AnalysisOptions

    /// Paths evaluates nothing: the options that choose data, metrics, draws or a resume
    /// would be silently dropped, so they are refused.
    func validate() throws {
        let d = options.data
        let given: [(String, Bool)] = [
            ("--data", d.data != nil), ("--labels", d.labels != nil), ("--images-dataset", d.imagesDataset != "images"),
            ("--labels-dataset", d.labelsDataset != "labels"), ("--mean", d.mean != nil), ("--std", d.std != nil),
            ("--offset", d.offset != 0), ("--limit", d.limit != nil), ("--metric", !options.metrics.isEmpty),
            ("--rule", options.rule != nil), ("--seed", options.seed != 0), ("--resume", options.resume),
            ("--shard", options.shard != nil),
        ]
        let unused = given.filter(\.1).map(\.0)
        if !unused.isEmpty {
            throw ValidationError("\(unused.joined(separator: ", ")): paths evaluates no network (it needs only the checkpoint and a schedule), so this does not apply")
        }
    }

    func run() throws {
        let context = try options.context(analysis: "paths", needsData: false)
        if options.dryRun {
            print("paths: dry run (nothing is computed or written)\nIn all: 0 sub-network evaluations over 0 images: the distribution is exact and needs no network pass.")
            return
        }
        let folder = try options.folder(default: "paths")
        let table = PathsAnalysis.run(survival: context.survival, checkpoint: context.checkpoint.path, schedule: context.scheduleName)
        try finish(table, options: options, folder: folder)
    }
}

/// Runs `body`, naming the flag a pruning error is about: the rule (--prune-rule) or the
/// depth (--prune-depth).
func flagPruneErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as PruneError {
        switch error {
        case .unknownRule: throw CLIError("--prune-rule: \(error)")
        case .depthOutOfRange: throw CLIError("--prune-depth: \(error)")
        }
    }
}

/// About `steps` + 1 depths from 0 to `count`, evenly spaced, without repeats.
func evenlySpacedDepths(count: Int, steps: Int) -> [Int] {
    var depths = Set<Int>()
    for i in 0...steps {
        let fraction = Double(i) / Double(steps)
        depths.insert(Int((fraction * Double(count)).rounded()))
    }
    return depths.sorted()
}
