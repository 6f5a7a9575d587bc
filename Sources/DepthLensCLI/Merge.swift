import ArgumentParser
import DepthLens
import Foundation

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join the shards of a run (--shard K/N) into its results: the same files, byte for byte, as the run on one machine.",
        discussion: """
            Refuses shards of different configurations (naming the field), a missing, unfinished or \
            repeated shard, a unit saved by two shards, and a shard whose journal holds damaged unit \
            records (named; rerunning that shard computes them again). The merge replays the analysis from the \
            shards' saved units, computing nothing: it reads the checkpoint and the data's labels again \
            (at the paths the shards were given, from the directory they ran in), so they must be \
            unchanged. See docs/scale-out.md.
            """)

    @Argument(help: ArgumentHelp("Folder for the results (created if missing).", valueName: "output"))
    var output: String

    @Argument(help: ArgumentHelp("The shard folders (shard-K-of-N), every K of 1...N once.", valueName: "shard-folder"))
    var shardFolders: [String] = []

    @Flag(help: "No progress line.")
    var quiet = false

    func validate() throws {
        guard !shardFolders.isEmpty else { throw ValidationError("give the shard folders to merge (such as results/report/shard-*-of-4).") }
    }

    func run() throws {
        let shards = try shardFolders.map(ShardFolderContents.init(folder:))
        let plan = try ShardMerge.check(shards)
        let output = URL(fileURLWithPath: self.output).standardizedFileURL.path
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot create the output folder \(self.output): \(error.localizedDescription)")
        }
        try OutputFolderLock.take(output, command: "depthlens merge", quiet: quiet)
        let first = shards[0]
        // The combined journal: the configuration every shard shares, without what is a
        // shard's own, and every unit; the replay below finds them all and computes nothing.
        let journal: ProgressJournal
        do {
            journal = try ProgressJournal(path: "\(output)/\(first.finished.analysis)-progress.journal",
                                          configuration: ShardMerge.sharedConfiguration(first.configuration), resume: false)
            try journal.record(plan.units.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        } catch let error as JournalError {
            throw CLIError(AnalysisOptions.describe(error))
        }
        if !quiet {
            let times = shards.sorted { $0.finished.shard.index < $1.finished.shard.index }.map(\.finished.seconds)
            let mean = times.reduce(0, +) / Double(times.count)
            FileHandle.standardError.write(Data(String(format: "merge: %d shard(s), %d unit(s); shard run times %@ s (slowest %.2fx the mean)\n",
                                                       shards.count, plan.units.count,
                                                       times.map { String(format: "%.1f", $0) }.joined(separator: ", "),
                                                       mean > 0 ? (times.max() ?? 0) / mean : 1).utf8))
        }
        let arguments = first.finished.arguments + ["-o", output, "--resume", "--merge-replay"]
        guard FileManager.default.changeCurrentDirectoryPath(first.finished.workingDirectory) else {
            throw CLIError("\(first.folder): the shards ran in \(first.finished.workingDirectory), which a merge cannot enter; run them and the merge where the same paths resolve")
        }
        let command: ParsableCommand
        do {
            command = try DepthLensCommand.parseAsRoot(arguments)
        } catch {
            throw CLIError("\(first.folder)/\(ShardFolder.finishedFile): the recorded command line cannot be replayed: \(DepthLensCommand.message(for: error))")
        }
        guard var replay = command as? any AnalysisCommand else {
            throw CLIError("\(first.folder)/\(ShardFolder.finishedFile): the recorded command is not an analysis")
        }
        try replay.run()
    }
}

/// The analysis commands a shard can run (and a merge replays).
protocol AnalysisCommand: ParsableCommand {}
extension Sample: AnalysisCommand {}
extension Ensemble: AnalysisCommand {}
extension Lesion: AnalysisCommand {}
extension Depth: AnalysisCommand {}
extension Reorder: AnalysisCommand {}
extension Report: AnalysisCommand {}

/// One shard folder as a merge reads it.
struct ShardFolderContents {
    var folder: String
    var finished: ShardFolder.Finished
    var configuration: [(String, String)]
    var units: [String: [String]]

    init(folder: String) throws {
        self.folder = folder
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("\(folder): no such shard folder")
        }
        let journals = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix("-progress.journal") }.sorted()
        guard journals.count == 1 else {
            throw CLIError("\(folder): is not a shard folder (it holds \(journals.isEmpty ? "no" : "\(journals.count)") progress journal(s); a shard of --shard K/N holds one)")
        }
        let damaged: ProgressJournal.DamagedRecords
        do {
            (configuration, units, damaged) = try ProgressJournal.contents(of: "\(folder)/\(journals[0])")
        } catch let error as JournalError {
            throw CLIError(error.description)
        }
        let fields = Dictionary(configuration, uniquingKeysWith: { a, _ in a })
        guard let shard = fields["shard"], let expected = fields["shard units"].flatMap({ Int($0) }) else {
            throw CLIError("\(folder)/\(journals[0]): is not a shard's journal (no shard field): an interrupted run of the whole analysis; resume it with --resume instead")
        }
        // A damaged record is never merged: the shard's own rerun computes it again.
        if damaged.count > 0 {
            throw CLIError("\(folder)/\(journals[0]): shard \(shard) has \(Self.describe(damaged)); run shard \(shard) again (the same command: it keeps its intact units and computes the damaged ones again), then merge")
        }
        guard let finished = try ShardFolder.Finished.read(from: folder) else {
            throw CLIError("\(folder): shard \(shard) is unfinished: \(units.count) of its \(expected) unit(s) saved; run it again (it continues from its journal), then merge")
        }
        // More units than its own are caught by the merge (a unit saved by two shards).
        guard units.count >= expected, finished.units == expected else {
            throw CLIError("\(folder): shard \(shard) is missing units: \(units.count) of its \(expected) saved; run it again, then merge")
        }
        self.finished = finished
    }

    /// "2 damaged unit record(s) (their checksums do not match: edited, or damaged on disk): KEY, KEY".
    static func describe(_ damaged: ProgressJournal.DamagedRecords) -> String {
        var parts: [String] = []
        if !damaged.keys.isEmpty {
            let shown = damaged.keys.prefix(5).joined(separator: ", ") + (damaged.keys.count > 5 ? " and \(damaged.keys.count - 5) more" : "")
            parts.append("\(damaged.keys.count) damaged unit record(s) (their checksums do not match: edited, or damaged on disk): \(shown)")
        }
        if damaged.unreadable > 0 {
            parts.append("\(damaged.unreadable) damaged record(s) whose unit cannot be read")
        }
        return parts.joined(separator: " and ")
    }
}

/// The checks of a merge, apart from files.
enum ShardMerge {
    /// Fields of a shard's journal that are its own, not the run's.
    static let shardFields: Set<String> = ["shard", "shard units", "engine", "plan"]

    /// The configuration a merge's replay has: the run's, without the shard's fields.
    static func sharedConfiguration(_ fields: [(String, String)]) -> [(String, String)] {
        fields.filter { !shardFields.contains($0.0) }
    }

    struct Merged {
        var units: [String: [String]]
    }

    /// Refuses shards of different runs (naming the field), of different splits, a shard
    /// given twice or missing, and a unit saved twice; returns every unit.
    static func check(_ shards: [ShardFolderContents]) throws -> Merged {
        let first = shards[0]
        let reference = Dictionary(first.configuration, uniquingKeysWith: { a, _ in a })
        for shard in shards.dropFirst() {
            let fields = Dictionary(shard.configuration, uniquingKeysWith: { a, _ in a })
            for (field, _) in first.configuration + shard.configuration where !["shard", "shard units"].contains(field) {
                let (mine, theirs) = (fields[field], reference[field])
                if mine != theirs {
                    throw CLIError("\(shard.folder): a shard of another run than \(first.folder): \(field) is '\(mine ?? "(absent)")' there, '\(theirs ?? "(absent)")' in \(first.folder)")
                }
            }
            if shard.finished.shard.count != first.finished.shard.count {
                throw CLIError("\(shard.folder): shard \(shard.finished.shard) of a split into \(shard.finished.shard.count), but \(first.folder) is shard \(first.finished.shard) of a split into \(first.finished.shard.count)")
            }
        }
        var byIndex: [Int: String] = [:]
        for shard in shards {
            if let other = byIndex[shard.finished.shard.index] {
                throw CLIError("shard \(shard.finished.shard) is given twice: \(other) and \(shard.folder)")
            }
            byIndex[shard.finished.shard.index] = shard.folder
        }
        let count = first.finished.shard.count
        let missing = (1...count).filter { byIndex[$0] == nil }
        if !missing.isEmpty {
            throw CLIError("shard(s) \(missing.map { "\($0)/\(count)" }.joined(separator: ", ")) missing: a merge needs every shard of the run")
        }
        var units: [String: [String]] = [:]
        var owner: [String: String] = [:]
        for shard in shards {
            for (key, payload) in shard.units {
                if let other = owner[key] {
                    throw CLIError("unit \(key) is saved by two shards: \(other) and \(shard.folder)")
                }
                owner[key] = shard.folder
                units[key] = payload
            }
        }
        // The plan field names the number of units the whole run has.
        if let plan = reference["plan"], let total = plan.split(separator: "(").last.flatMap({ Int($0.split(separator: " ")[0]) }), total != units.count {
            throw CLIError("the shards hold \(units.count) unit(s) but the run has \(total): units are missing")
        }
        return Merged(units: units)
    }
}
