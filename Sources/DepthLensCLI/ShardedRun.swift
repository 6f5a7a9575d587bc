import ArgumentParser
import DepthLens
import Foundation

extension WorkPlan {
    /// The plan of `body`: it runs with nothing computed (``WorkScope/planning(_:)``), no
    /// journal and no stop request; the tables it makes are placeholders and it writes
    /// nothing (commands check ``AnalysisOptions/writesNoResults``).
    static func make(_ context: AnalysisContext, _ body: (AnalysisContext) throws -> Void) throws -> WorkPlan {
        let plan = WorkPlan()
        var planning = context
        planning.scope = .planning(plan)
        planning.journal = nil
        planning.stopRequest = nil
        planning.progress = nil
        try body(planning)
        return plan
    }
}

extension AnalysisOptions {
    /// Computes this run's shard of `plan` (``ShardSplit``) into `folder`'s journal, which
    /// it continues when there is one (a requeued task), keeps for `depthlens merge`, and
    /// marks finished (``ShardFolder``).
    func runShard(_ context: AnalysisContext, plan: WorkPlan, folder: String, analysis: String,
                  fields: [(String, String)], fingerprints: [ContentFingerprint],
                  _ body: (AnalysisContext) throws -> Void) throws {
        guard let spec = shardSpec else { return }
        let started = Date()
        let split = ShardSplit(plan, shards: spec.count)
        let owned = split.shards[spec.index - 1]
        let fields = fields + [("engine", try EngineChoice.fromEnvironment().rawValue),
                               ("plan", "\(plan.digest) (\(plan.units.count) units)"),
                               ("shard", spec.description), ("shard units", "\(owned.count)")]
        let journal = "\(folder)/\(analysis)-progress.journal"
        try? FileManager.default.removeItem(atPath: "\(folder)/\(ShardFolder.finishedFile)")
        var context = context
        context.scope = .shard(Set(owned))
        var computed = 0, resumed = 0
        try runJournaled(context, folder: folder, analysis: analysis, fields: fields, fingerprints: fingerprints,
                         resume: FileManager.default.fileExists(atPath: journal), keep: true) { context in
            try body(context)
            computed = context.journal?.recordedUnits ?? 0
            resumed = context.journal?.resumedUnits ?? 0
            let saved = context.journal?.units ?? [:]
            if let missing = owned.first(where: { saved[$0] == nil }) {
                throw CLIError("\(journal): shard \(spec) finished without unit \(missing); this is a bug in DepthLens")
            }
        }
        let seconds = Date().timeIntervalSince(started)
        try ShardFolder.Finished(analysis: analysis, shard: spec, units: owned.count, resumed: resumed, seconds: seconds,
                                 arguments: ShardFolder.replayArguments(Array(CommandLine.arguments.dropFirst())),
                                 workingDirectory: FileManager.default.currentDirectoryPath).write(to: folder)
        if !quiet {
            FileHandle.standardError.write(Data(String(format: "%@: shard %@ finished: %d unit(s) (%d computed now), estimated %.3g operations, %.1f s; saved in %@\n",
                                                       analysis, spec.description, owned.count, computed, split.costs[spec.index - 1],
                                                       seconds, folder).utf8))
        }
        if json {
            printJSON(["analysis": analysis, "shard": spec.description, "units": owned.count, "computed": computed,
                       "seconds": seconds, "folder": folder])
        } else {
            print("Shard \(spec) of \(analysis) saved in \(folder)/; when all \(spec.count) are done: depthlens merge <output> <shard folders>")
        }
    }
}

/// A shard's folder, `<output>/shard-K-of-N`: its journal (`<analysis>-progress.journal`,
/// the shard's partial results, bit-exact) and, once every unit of the shard is saved,
/// `shard-finished.tsv`: the analysis, the shard, its unit count, its run time, and the
/// command line a merge replays.
enum ShardFolder {
    static let finishedFile = "shard-finished.tsv"
    static let formatLine = "depthlens-shard v1"

    static func name(_ spec: ShardSpec) -> String { "shard-\(spec.index)-of-\(spec.count)" }

    /// The command line without what is the shard's own (`--shard`, `--resume`, `--dry-run`,
    /// the output folder), to be replayed by a merge into its own folder.
    static func replayArguments(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if ["--shard", "-o", "--output"].contains(a) { i += 2; continue }
            if a.hasPrefix("--shard=") || a.hasPrefix("--output=") || a == "--resume" || a == "--dry-run" { i += 1; continue }
            if a.hasPrefix("-o"), a.count > 2, !a.hasPrefix("--") { i += 1; continue }
            out.append(a)
            i += 1
        }
        return out
    }

    /// What a finished shard records.
    struct Finished: Equatable {
        var analysis: String
        var shard: ShardSpec
        var units: Int
        /// Units found in the journal when this run started (a requeued or rerun shard).
        var resumed: Int
        /// This run's time from the split of the plan to its last unit saved (loading the
        /// checkpoint and planning excluded; a resumed shard: the last run's alone).
        var seconds: Double
        var arguments: [String]
        var workingDirectory: String

        func write(to folder: String) throws {
            let argumentsJSON = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
            let lines = [Self.line("analysis", analysis), Self.line("shard", shard.description), Self.line("units", "\(units)"), Self.line("units resumed", "\(resumed)"),
                         Self.line("seconds", String(format: "%.3f", seconds)), Self.line("arguments", argumentsJSON),
                         Self.line("working directory", workingDirectory)]
            try AtomicFile.write(Data((ShardFolder.formatLine + "\n" + lines.joined()).utf8), to: "\(folder)/\(ShardFolder.finishedFile)")
        }

        private static func line(_ field: String, _ value: String) -> String {
            "\(field)\t\(value.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " "))\n"
        }

        /// Reads `folder`'s file; nil when there is none (the shard has not finished).
        /// - Throws: ``CLIError`` naming the file when it is not one DepthLens wrote.
        static func read(from folder: String) throws -> Finished? {
            let path = "\(folder)/\(ShardFolder.finishedFile)"
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            var fields: [String: String] = [:]
            for line in lines.dropFirst() {
                let parts = line.split(separator: "\t", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            guard lines.first == ShardFolder.formatLine, let analysis = fields["analysis"],
                  let shard = fields["shard"].flatMap({ try? ShardSpec(parsing: $0) }),
                  let units = fields["units"].flatMap({ Int($0) }), let resumed = fields["units resumed"].flatMap({ Int($0) }),
                  let seconds = fields["seconds"].flatMap({ Double($0) }),
                  let arguments = fields["arguments"].flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String] }),
                  let directory = fields["working directory"] else {
                throw CLIError("\(path): is not a DepthLens shard record (its first line is not '\(ShardFolder.formatLine)', or a field is missing)")
            }
            return Finished(analysis: analysis, shard: shard, units: units, resumed: resumed, seconds: seconds, arguments: arguments,
                            workingDirectory: directory)
        }
    }
}

/// `--dry-run`: the plan as text.
enum DryRun {
    static func print(_ plan: WorkPlan, analysis: String, context: AnalysisContext, shards: Int?) {
        func ops(_ v: Double) -> String { String(format: "%.3g", v) }
        var out = "\(analysis): dry run (nothing is computed or written)\n"
        out += "network: \(context.blockCount) blocks; data: \(context.source.name), \(context.source.count) images\n\n"
        out += "| part | sub-network evaluations | units | images | estimated operations |\n|---|---|---|---|---|\n"
        var evaluations = 0
        for (i, section) in plan.sections.enumerated() {
            let cost = section.overhead + section.units.reduce(0) { $0 + $1.cost }
            // Each sub-network (or member) sees every image once; the deterministic network
            // evaluated beside them is in the operations, not in the count.
            evaluations += section.subNetworks
            let what = switch section.kind {
            case .subNetworks: "sub-networks"
            case .ensembleBatches: "ensemble members"
            case .gradientPaths: "backward route patterns"
            }
            let units = switch section.kind {
            case .subNetworks: "\(section.units.count)"
            case .ensembleBatches: "\(section.units.count) batches"
            case .gradientPaths: "\(section.units.count) image chunks"
            }
            out += "| \(i + 1) | \(section.subNetworks) \(what) | \(units) | \(section.images) | \(ops(cost)) |\n"
        }
        let images = plan.sections.map(\.images).max() ?? 0
        out += "\nIn all: \(evaluations) sub-network evaluations over \(images) images, \(plan.units.count) units, about \(ops(plan.totalCost)) floating-point operations (2 per multiply-add; an estimate from the model description).\n"
        if let shards {
            let split = ShardSplit(plan, shards: shards)
            out += "\nPer shard (--shard K/\(shards)), slowest \(String(format: "%.2f", split.imbalance))x the mean:\n\n| shard | units | estimated operations |\n|---|---|---|\n"
            for k in 0..<shards { out += "| \(k + 1)/\(shards) | \(split.shards[k].count) | \(ops(split.costs[k])) |\n" }
        } else {
            out += "\nPer shard (give --shard 1/N for the full list of N shards):\n\n| shards N | units per shard | largest shard's operations | slowest / mean |\n|---|---|---|---|\n"
            for n in [1, 2, 4, 8, 16, 32, 64] where n == 1 || n <= plan.units.count {
                let split = ShardSplit(plan, shards: n)
                let counts = split.shards.map(\.count)
                out += "| \(n) | \(counts.min() ?? 0)-\(counts.max() ?? 0) | \(ops(split.costs.max() ?? 0)) | \(String(format: "%.2f", split.imbalance)) |\n"
            }
        }
        Swift.print(out, terminator: "")
    }
}
