import ArgumentParser
import DepthLens
import Foundation

extension EnsembleAnalysis.Granularity: ExpressibleByArgument {}
extension GateUnit: ExpressibleByArgument {}

/// Flags every analysis shares: checkpoint, data, schedule, rule, metrics, seed, output.
struct AnalysisOptions: ParsableArguments {
    @Argument(help: "A DepthLens checkpoint (.h5, format v1), or with --arch a plain state_dict dump (.safetensors or HDF5).")
    var checkpoint: String

    @OptionGroup var architecture: ArchitectureOption

    @OptionGroup var data: DataOptions
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var plugins: PluginOptions

    @Option(help: ArgumentHelp("Survival schedule: NAME or NAME:key=value,... (default: the probabilities the checkpoint records). Built in: constant, linear, linear-from-zero, linear-efficientnet, custom; see `depthlens plugins`.", valueName: "spec"))
    var schedule: String?

    @Option(help: "Test-time rule: the deterministic network, and how kept blocks are scaled when sampling (default: the checkpoint's).")
    var rule: TrainingMetadata.TestTimeRule?

    @Option(name: .customLong("metric"), help: ArgumentHelp("A metric spec; repeatable (default: accuracy, nll, brier, calibration, plus the ensemble metrics where they apply). See `depthlens plugins`.", valueName: "spec"))
    var metrics: [String] = []

    @Option(help: "What a gate addresses where a block holds several residual branches (timm_vit: attention and MLP): block (lesions and samples drop whole blocks) or branch (each branch on its own, numbered 1...2L, as timm's drop path trains them). The ResNets have one branch per block: both are the same.")
    var unit: GateUnit = .block

    @Option(help: "Seed of every random draw: the same seed gives the same gates.")
    var seed: UInt64 = 0

    @Option(name: .shortAndLong, help: ArgumentHelp("Folder for the CSV files and SVG plots (created if missing).", valueName: "dir"))
    var output: String?

    @Flag(help: "Print a JSON summary instead of the table.")
    var json = false

    @Flag(help: "No progress line.")
    var quiet = false

    @Flag(help: "Continue an interrupted run: finished units saved in the output folder's progress file are not computed again, and the results are the same as an uninterrupted run's.")
    var resume = false

    @Option(help: ArgumentHelp("Compute only the K-th of N parts of the work, split by estimated cost, into <output>/shard-K-of-N (continuing its journal there when it has one); `depthlens merge` joins the N parts into the results. See docs/scale-out.md.", valueName: "K/N"))
    var shard: String?

    @Flag(help: "Print the work: sub-network evaluations, images, estimated operations in all and per shard; compute and write nothing.")
    var dryRun = false

    /// Set by `depthlens merge` only: every unit comes from the journal it wrote.
    @Flag(help: ArgumentHelp("Set by depthlens merge: replay every unit from the output folder's journal, computing none.", visibility: .hidden))
    var mergeReplay = false

    func validate() throws {
        if let shard {
            do { _ = try ShardSpec(parsing: shard) } catch { throw ValidationError("--shard: \(error)") }
        }
        if shard != nil, mergeReplay { throw ValidationError("--shard: a merge replays every shard; give no shard") }
        if let output, output.isEmpty { throw ValidationError("-o/--output: the folder name is empty.") }
        if let output, output.contains("\n") { throw ValidationError("-o/--output: the folder name holds a newline.") }
    }

    /// The shard this run computes, or nil for all of the work.
    var shardSpec: ShardSpec? { shard.flatMap { try? ShardSpec(parsing: $0) } }

    /// Whether this run writes no results: a dry run, or a shard (whose journal is its result).
    var writesNoResults: Bool { dryRun || shard != nil }

    static let memberMetrics = ["accuracy", "nll", "brier", "calibration", "agreement"]
    static let ensembleMetrics = ["gibbs_nll", "member_brier", "entropy", "uncertainty", "diversity"]

    /// Loads the checkpoint (unless `loaded` is given: it, loaded by ``ArchitectureOption/load(_:)``)
    /// and plugins, resolves schedule, rule and data.
    func context(analysis: String, ensemble: Bool = false, needsData: Bool = true, loaded: Checkpoint? = nil) throws -> AnalysisContext {
        try plugins.load()
        let ckpt = try loaded ?? architecture.load(checkpoint)
        let registry = PluginRegistry.shared
        let survival: [Double]
        let scheduleName: String
        if let schedule {
            survival = try registry.survivalProbabilities(schedule, for: ckpt.architecture)
            scheduleName = schedule
        } else if let recorded = ckpt.training?.survivalProbabilities {
            survival = recorded
            scheduleName = ckpt.training?.schedule.map { s in
                s.name + (s.params.isEmpty ? "" : ":" + s.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
            } ?? "recorded"
        } else {
            throw CLIError("\(ckpt.path) records no survival probabilities; give --schedule (such as linear:pL=0.5)")
        }
        let chosenRule = rule ?? ckpt.training?.testTimeRule ?? .expectation
        let chosenMetrics = metrics.isEmpty ? Self.memberMetrics + (ensemble ? Self.ensembleMetrics : []) : metrics
        let source: any ImageSource = needsData ? try data.open(for: ckpt) : EmptySource()
        let progress = ProgressLine(analysis, quiet: quiet)
        let evaluator = try runtime.evaluator(for: Network(checkpoint: ckpt), unit: unit)
        var context = AnalysisContext(
            checkpoint: ckpt, evaluator: evaluator, source: source, batchSize: runtime.batchSize,
            survival: evaluator.network.survivalPerGate(survival, unit: unit), scheduleName: scheduleName, rule: chosenRule,
            metrics: chosenMetrics, registry: registry, seed: seed)
        // Analyses count images times groups of sub-networks: a percentage says what that means.
        context.progress = { progress.update(done: $0, total: $1, unit: nil) }
        try context.validateMetrics()
        return context
    }

    /// The output folder, created when missing and locked for the rest of the process
    /// (``OutputFolderLock``): a second run writing there is refused before it touches it.
    /// - Parameter name: the folder under `results/` without `-o`, and the command's name.
    /// A shard's folder is `shard-K-of-N` inside it; a dry run gets the path alone, since it
    /// writes nothing.
    func folder(default name: String) throws -> String {
        let base = output ?? "results/\(name)"
        if dryRun { return base }
        try OutputPath.requireFolders(above: base)
        let path = shardSpec.map { "\(base)/\(ShardFolder.name($0))" } ?? base
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot create the output folder \(path): \(error.localizedDescription)")
        }
        try OutputFolderLock.take(path, command: "depthlens \(name)", quiet: quiet)
        return path
    }
}

extension AnalysisOptions {
    /// Runs `body` with a ``ProgressJournal`` in `folder`: finished units are saved as
    /// they complete, SIGINT and SIGTERM stop the run between units (exit 130 or 143, the
    /// results files untouched), and `--resume` continues from the saved units. The
    /// journal is deleted once `body` has written the results.
    ///
    /// With `--dry-run`, `body` runs as a plan (nothing is computed or written) and the
    /// work is printed; with `--shard`, it runs as a plan, then computes the shard's units
    /// into the shard folder's journal, which stays there for `depthlens merge`
    /// (``ShardFolder``); with `--merge-replay`, every unit must come from the journal.
    /// - Parameter parameters: the command's own flags that change its results.
    /// - Parameter files: further files the results depend on (recalibration images),
    ///   fingerprinted like the checkpoint and the data.
    func journaled(_ context: AnalysisContext, folder: String, analysis: String, parameters: [(String, String)],
                   files: [String] = [], _ body: (AnalysisContext) throws -> Void) throws {
        var fields: [(String, String)] = [("analysis", analysis)]
        fields.append(("checkpoint", context.checkpoint.path))
        // --mean/--std change every input: a resume with others would mix results.
        fields.append(("data", "\(context.source.name) (\(context.source.count) images, offset \(data.offset), limit \(data.limit.map(String.init) ?? "none")"
                       + (data.mean.map { ", --mean \($0) --std \(data.std ?? "")" } ?? "") + ")"))
        // What the files hold, not their size and time: a file replaced or rewritten in
        // place is noticed on --resume (ProgressJournal.checkUnchanged).
        let fingerprints = try RunFingerprints.of([context.checkpoint.path] + data.request(for: context.checkpoint).files() + files)
        fields += ProgressJournal.fingerprintFields(fingerprints)
        fields.append(("schedule", context.scheduleName))
        fields.append(("survival probabilities", context.survival.map { "\($0)" }.joined(separator: ",")))
        fields.append(("rule", context.rule.rawValue))
        if context.evaluator.network.hasSeveralBranchesPerBlock { fields.append(("unit", context.evaluator.unit.rawValue)) }
        fields.append(("metrics", context.metrics.joined(separator: " ")))
        fields.append(("seed", "\(context.seed)"))
        fields += parameters
        if dryRun || shard != nil {
            let plan = try WorkPlan.make(context, body)
            if dryRun { return DryRun.print(plan, analysis: analysis, context: context, shards: shardSpec?.count) }
            return try runShard(context, plan: plan, folder: folder, analysis: analysis, fields: fields, fingerprints: fingerprints, body)
        }
        var context = context
        if mergeReplay { context.scope = .replay }
        try runJournaled(context, folder: folder, analysis: analysis, fields: fields, fingerprints: fingerprints, resume: resume,
                         keep: false, body)
    }

    /// Opens the journal, runs `body` with it and the signal handlers, and turns an
    /// interruption into its message and exit status. The journal is deleted after `body`
    /// unless `keep` (a shard's). `fingerprints` (also among `fields`) are checked first on
    /// a resume, for a message that names the changed file.
    func runJournaled(_ context: AnalysisContext, folder: String, analysis: String, fields: [(String, String)],
                      fingerprints: [ContentFingerprint], resume: Bool, keep: Bool,
                      _ body: (AnalysisContext) throws -> Void) throws {
        // The folder is this process's (folder(default:) locked it) before the journal is
        // touched, and the handlers are in place once the journal exists.
        precondition(OutputFolderLock.holds(folder), "journaled(_:folder:) needs the folder locked by folder(default:)")
        SignalStop.install()
        let journal: ProgressJournal
        do {
            if resume { try ProgressJournal.checkUnchanged(fingerprints, journal: "\(folder)/\(analysis)-progress.journal") }
            journal = try ProgressJournal(path: "\(folder)/\(analysis)-progress.journal", configuration: fields, resume: resume)
        } catch let error as JournalError {
            throw CLIError(Self.describe(error))
        }
        let environment = ProcessInfo.processInfo.environment
        journal.pauseAfterUnit = UInt32(environment["DEPTHLENS_TEST_UNIT_PAUSE_MS"].flatMap { UInt32($0) } ?? 0)
        if journal.resumedUnits > 0, !quiet, !mergeReplay {
            FileHandle.standardError.write(Data("\(analysis): resuming with \(journal.resumedUnits) finished unit(s) from \(journal.path)\n".utf8))
        }
        if journal.damagedUnits > 0 {
            // Said even with --quiet: the file was edited or damaged, and the user should know.
            FileHandle.standardError.write(Data("\(analysis): \(journal.damagedUnits) saved unit(s) in \(journal.path) do not match their checksums (edited or damaged); they are computed again\n".utf8))
        }
        // Test hook: wait (until a signal) before the first unit, so that a test can stop a
        // run that has surely saved nothing.
        if let pause = environment["DEPTHLENS_TEST_START_PAUSE_MS"].flatMap({ Int($0) }) {
            let end = Date().addingTimeInterval(Double(pause) / 1000)
            while SignalStop.request.code == nil, Date() < end { usleep(10_000) }
        }
        var context = context
        context.journal = journal
        context.stopRequest = SignalStop.request
        do {
            try body(context)
            if !keep { journal.remove() }
        } catch let interrupted as Interrupted {
            let signal = SignalStop.name(interrupted.code)
            let rerun = keep ? "run the same command again to continue" : "run the same command with --resume to continue"
            if journal.removeIfEmpty() {
                // Nothing to resume: the journal is gone.
                FileHandle.standardError.write(Data("\n\(analysis): interrupted by \(signal) before any unit finished; nothing was saved; run the same command to start again\n".utf8))
            } else {
                FileHandle.standardError.write(Data("\n\(analysis): interrupted by \(signal); \(journal.finishedCount) finished unit(s) saved in \(journal.path); \(rerun)\n".utf8))
            }
            // 128 + the signal number, the shell's convention (130 for SIGINT, 143 for SIGTERM).
            throw ExitCode(128 + interrupted.code)
        } catch {
            if journal.removeIfEmpty() { throw error }
            // The finished units are kept (a plain rerun is refused over them): say how to use them.
            throw CLIError("\(OneLineErrors.describe(error)); \(journal.finishedCount) finished unit(s) saved in \(journal.path); once this is fixed, run the same command with --resume to continue")
        }
    }
}

extension AnalysisOptions {
    /// A journal error with the remedy in terms of this command's flags.
    static func describe(_ error: JournalError) -> String {
        let remedy: String? = switch error.reason {
        case .nothingToResume: "run without --resume"
        case .unfinishedRun: "add --resume to continue it, or delete the file to start over"
        case .incompleteHeader: "delete the file and run without --resume"
        case .other: error.remedy
        }
        return "\(error.path): \(error.message)" + (remedy.map { "; \($0)" } ?? "")
    }
}

/// SIGINT and SIGTERM, turned into the ``StopRequest`` analyses poll between units of
/// work. A second signal of the same kind ends the process at once (the default action
/// is restored after the first).
enum SignalStop {
    /// The request the handlers set, with the signal number as its code.
    static let request = StopRequest()

    /// Installs the handlers (again harmlessly).
    static func install() {
        _ = request  // created here, never first inside a handler
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber) { number in
                SignalStop.request.request(number)
                signal(number, SIG_DFL)
            }
        }
    }

    static func name(_ signal: Int32) -> String {
        signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
    }
}

/// A source with no images, for analyses that need no data.
struct EmptySource: ImageSource {
    var count: Int { 0 }
    var channels: Int { 0 }
    var height: Int { 0 }
    var width: Int { 0 }
    var name: String { "(no data)" }
    func pixels(_ range: Range<Int>) throws -> [Float] { [] }
    func labels(_ range: Range<Int>) throws -> [Int]? { [] }
}

/// A table's rows grouped into lines: one per (configuration, member, k), in first-seen
/// order, with every metric's value; and the metric names in first-seen order.
struct SummaryLines {
    struct Line {
        /// The first row of the line: its experiment, configuration, member and k.
        var row: ResultRow
        var values: [String: Double]

        var configuration: String { row.configuration }
        var member: String { row.member?.name ?? "" }
        var k: Double? { row.k }
    }

    var lines: [Line] = []
    var metricNames: [String] = []

    init(_ table: ResultTable) {
        var index: [String: Int] = [:]
        for row in table.rows {
            let key = row.configuration + "\u{1}" + (row.member?.name ?? "") + "\u{1}" + (row.k.map { "\($0)" } ?? "")
            if index[key] == nil {
                index[key] = lines.count
                lines.append(Line(row: row, values: [:]))
            }
            lines[index[key]!].values[row.metric] = row.value
            if !metricNames.contains(row.metric) { metricNames.append(row.metric) }
        }
    }
}

/// Prints a table: one line per (configuration, member), one column per metric.
func printSummary(_ table: ResultTable, metrics wanted: [String]? = nil, limit: Int = 60, json: Bool) {
    if json {
        printJSON(summaryJSON(table))
        return
    }
    let summary = SummaryLines(table)
    let columns = wanted.map { w in summary.metricNames.filter { w.contains($0) } } ?? summary.metricNames
    let width = max(14, (summary.lines.map(\.configuration.count).max() ?? 0) + 2)
    print(pad("configuration", width) + pad("member", 15) + pad("k", 8) + columns.map { pad($0, 12) }.joined())
    for e in summary.lines.prefix(limit) {
        let k = e.k.map { $0 == $0.rounded() ? String(Int($0)) : String(format: "%.3f", $0) } ?? ""
        print(pad(e.configuration, width) + pad(e.member, 15) + pad(k, 8)
            + columns.map { pad(e.values[$0].map { String(format: "%.4f", $0) } ?? "", 12) }.joined())
    }
    if summary.lines.count > limit { print("... \(summary.lines.count - limit) more rows in the CSV") }
}

/// A table as `--json` prints it: checkpoint, schedule, seed, and one entry per
/// (configuration, member, k) with every metric's value (null when not finite).
func summaryJSON(_ table: ResultTable) -> [String: Any] {
    let entries = SummaryLines(table).lines.map { e -> [String: Any] in
        var object: [String: Any] = ["experiment": e.row.experiment.kind, "configuration": e.configuration,
                                     "member": e.member, "metrics": e.values.mapValues { $0.isFinite ? $0 as Any : NSNull() }]
        if let block = e.row.experiment.block { object["block"] = block }
        if let k = e.k { object["k"] = k }
        return object
    }
    return ["checkpoint": table.checkpoint, "schedule": table.schedule, "seed": table.seed, "results": entries]
}

/// Prints a JSON document, pretty and with sorted keys.
func printJSON(_ document: [String: Any]) {
    if let data = try? JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
    }
}
