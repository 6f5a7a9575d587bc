import ArgumentParser
import DepthLens
import Foundation

extension TrainingMetadata.TestTimeRule: ExpressibleByArgument {}

/// One deterministic gate configuration, from flags.
struct GateOptions: ParsableArguments {
    @Option(name: .long, help: "Form the deterministic network of a test-time rule: expectation (residual scaled by p_l) or inverted (identity). Default: the rule the checkpoint records (all blocks on when it records none); overriding it prints a warning.")
    var rule: TrainingMetadata.TestTimeRule?

    @Option(name: .long, help: ArgumentHelp("Blocks to drop, numbered from 1: a comma list with ranges, such as 3,7,10-12. Applied last: with --rule or --gates, the gates of these blocks become 0 and the others keep their values.", valueName: "blocks"))
    var drop: String?

    @Option(name: .long, help: ArgumentHelp("An explicit gate per block, comma-separated: 0 off, 1 on, other values scale the residual. Not with --rule; --drop then zeroes the blocks it names.", valueName: "g1,g2,..."))
    var gates: String?

    func validate() throws {
        if gates != nil && rule != nil { throw ValidationError("Give --gates or --rule, not both.") }
        _ = try dropList()
        _ = try explicitGates()
    }

    func dropList() throws -> [Int] {
        guard let drop else { return [] }
        return try parseBlockList(drop, flag: "--drop")
    }

    func explicitGates() throws -> [Float]? {
        guard let gates else { return nil }
        return try gates.split(separator: ",", omittingEmptySubsequences: false).enumerated().map { index, field in
            let text = field.trimmingCharacters(in: .whitespaces)
            guard let value = Float(text), value.isFinite else {
                throw ValidationError("--gates: entry \(index + 1) ('\(text)') is not a finite number.")
            }
            return value
        }
    }

    /// The configuration: `rule` is the rule to form the deterministic network with when
    /// no explicit gate vector is given (``RuleChoice``).
    func configuration(rule chosen: TrainingMetadata.TestTimeRule?) throws -> GateConfiguration {
        let explicit = try explicitGates()
        return GateConfiguration(rule: explicit == nil ? chosen : nil, drop: try dropList(), explicit: explicit)
    }

    /// The gate vector for `checkpoint`, under `rule` unless an explicit vector is given;
    /// what does not fit the network is reported against the flag that gave it.
    func resolve(for checkpoint: Checkpoint, rule chosen: TrainingMetadata.TestTimeRule?) throws -> [Float] {
        let count = checkpoint.blockCount
        if let bad = try dropList().first(where: { !(1...count).contains($0) }) {
            throw CLIError("--drop: \(BlockSelectionError.noSuchBlock(bad, blockCount: count))")
        }
        if let explicit = try explicitGates(), explicit.count != count {
            throw CLIError("--gates: the gate vector has \(explicit.count) entries but the network has \(count) blocks")
        }
        return try configuration(rule: chosen).resolve(for: checkpoint)
    }
}

/// Parses "3,7,10-12" into [3, 7, 10, 11, 12].
func parseBlockList(_ text: String, flag: String) throws -> [Int] {
    var blocks: [Int] = []
    for field in text.split(separator: ",", omittingEmptySubsequences: false) {
        let item = field.trimmingCharacters(in: .whitespaces)
        let bounds = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        switch bounds.count {
        case 1 where bounds[0] != nil:
            blocks.append(bounds[0]!)
        case 2 where bounds[0] != nil && bounds[1] != nil && bounds[0]! <= bounds[1]!:
            blocks.append(contentsOf: bounds[0]!...bounds[1]!)
        default:
            throw ValidationError("\(flag): '\(item)' is not a block number or a range like 3-5.")
        }
    }
    return blocks
}

/// How the work is split.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Images per batch.")
    var batchSize: Int = 256

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive.") }
        if let threads { try Self.checkThreads(threads) }
        _ = try EngineChoice.fromEnvironment()
    }

    /// Threads must be positive and at most ``Evaluator/maximumThreads``: the batch is split
    /// among them, so more than the machine's processors only take turns, and an absurd
    /// count used to overflow that split.
    static func checkThreads(_ threads: Int) throws {
        guard threads > 0 else { throw ValidationError("--threads must be positive.") }
        guard threads <= Evaluator.maximumThreads else {
            throw ValidationError("--threads: \(threads) worker threads asked; at most \(Evaluator.maximumThreads) (this machine has \(ProcessInfo.processInfo.activeProcessorCount) active processor(s); threads beyond them only take turns).")
        }
    }

    /// An evaluator of `network` on these threads, with the engine `DEPTHLENS_BACKEND`
    /// names (``EngineChoice``): every evaluation of the command, including the networks
    /// an analysis builds itself (reordered, recalibrated), runs on it.
    func evaluator(for network: Network, unit: GateUnit = .block) throws -> Evaluator {
        let evaluator = Evaluator(network: network, threads: threads, backend: try EngineChoice.fromEnvironment(), unit: unit)
        if let reason = evaluator.fastEngineRefusal {
            FileHandle.standardError.write(Data("note: \(reason); running the reference engine\n".utf8))
        }
        return evaluator
    }
}

/// The engine evaluations run on. The library reads no environment; the command line
/// maps `DEPTHLENS_BACKEND` (`reference` or `fast`; `fast` when unset or empty) to it.
/// `bench` has its own `--backend` flag instead.
enum EngineChoice {
    static let variable = "DEPTHLENS_BACKEND"

    /// - Throws: a ``ValidationError`` (exit 64) naming the variable when its value is
    ///   not an engine, rather than running on another engine than the one asked for.
    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Evaluator.Backend {
        guard let value = environment[variable], !value.isEmpty else { return .fast }
        guard let backend = Evaluator.Backend(rawValue: value) else {
            let known = Evaluator.Backend.allCases.map(\.rawValue).joined(separator: " or ")
            throw ValidationError("\(variable): '\(value)' is not an engine; give \(known).")
        }
        return backend
    }
}

/// The test-time rule a command forms its deterministic network with: the one given with
/// `--rule`, else the one the checkpoint records (nil: all blocks on). Says on standard
/// error which rule is used, and warns when `--rule` overrides the recorded one.
struct RuleChoice {
    var rule: TrainingMetadata.TestTimeRule?
    var recorded: TrainingMetadata.TestTimeRule?
    /// For the summary: the rule's name, or "all blocks on".
    var name: String { rule?.rawValue ?? "all blocks on" }
    var overridden: Bool { rule != nil && recorded != nil && rule != recorded }

    init(given: TrainingMetadata.TestTimeRule?, checkpoint: Checkpoint) {
        recorded = checkpoint.training?.testTimeRule
        rule = given ?? recorded
    }

    /// The line naming the rule and where it came from, and the warning when overridden.
    func lines(command: String, given: Bool) -> [String] {
        guard let rule else { return ["\(command): rule: all blocks on (the checkpoint records no test-time rule)"] }
        guard given else { return ["\(command): rule: \(rule.rawValue) (recorded in the checkpoint)"] }
        guard let recorded else { return ["\(command): rule: \(rule.rawValue) (--rule; the checkpoint records none)"] }
        if rule == recorded { return ["\(command): rule: \(rule.rawValue) (--rule, as the checkpoint records)"] }
        return ["\(command): rule: \(rule.rawValue) (--rule)",
                "\(command): warning: --rule \(rule.rawValue) overrides the checkpoint's recorded rule \(recorded.rawValue); this is not the network it was trained to be evaluated as"]
    }

    func report(command: String, given: Bool) {
        for line in lines(command: command, given: given) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}
