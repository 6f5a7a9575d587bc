import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// Errors of analysis requests, one type per concern. Their messages name the offending
/// value in the analyses' own terms (blocks, depths, rules), never a command-line flag:
/// a front end that knows which of its settings gave the value says so itself.

/// Blocks or depths that the network does not have.
public enum BlockSelectionError: Error, CustomStringConvertible, Equatable {
    /// A block number outside 1...`blockCount`.
    case noSuchBlock(Int, blockCount: Int)
    /// A number of active blocks outside 0...`blockCount`.
    case depthOutOfRange(Int, blockCount: Int)

    public var description: String {
        switch self {
        case .noSuchBlock(let block, let count): return "block \(block) does not exist; the network has blocks 1...\(count)"
        case .depthOutOfRange(let depth, let count): return "depth \(depth) is outside 0...\(count)"
        }
    }
}

/// A pruning request (``LesionAnalysis/prune(blocks:depth:rule:keepDownsampling:)``,
/// ``GreedyPrune``) that cannot be carried out.
public enum PruneError: Error, CustomStringConvertible, Equatable {
    /// A rule DepthLens does not know; `known` lists those it does.
    case unknownRule(String, known: [String])
    /// A depth to prune to outside `allowed`; `reason` says why the range is narrower
    /// than 0...L, when it is.
    case depthOutOfRange(Int, allowed: ClosedRange<Int>, reason: String? = nil)

    /// The rules, as ``LesionAnalysis/prune(blocks:depth:rule:keepDownsampling:)`` and the
    /// greedy search name them.
    public static let rules = ["every-other", "evenly-spaced", "greedy"]

    public var description: String {
        switch self {
        case .unknownRule(let rule, let known):
            return "unknown prune rule '\(rule)' (\(known.joined(separator: ", ")))"
        case .depthOutOfRange(let depth, let allowed, nil):
            return "prune depth \(depth) is outside \(allowed.lowerBound)...\(allowed.upperBound)"
        case .depthOutOfRange(let depth, let allowed, let reason?):
            return "\(reason), so the depth must be in \(allowed.lowerBound)...\(allowed.upperBound), found \(depth)"
        }
    }
}

/// More trials or groups than have distinct random streams (the random streams of trials are numbered per group and trial).
public enum TrialCountError: Error, CustomStringConvertible, Equatable {
    case beyondDistinctStreams(what: String, limit: String)

    public var description: String {
        switch self {
        case .beyondDistinctStreams(let what, let limit):
            return "\(what) asked, but only \(limit) draw from distinct random streams"
        }
    }
}

/// A reordering the network does not allow.
public enum ReorderError: Error, CustomStringConvertible, Equatable {
    /// No stage has two blocks with identity shortcuts.
    case nothingToReorder

    public var description: String {
        switch self {
        case .nothingToReorder: return "no stage has two blocks with identity shortcuts; nothing can be reordered"
        }
    }
}

/// An ensemble that cannot be formed.
public enum EnsembleError: Error, CustomStringConvertible, Equatable {
    /// Fewer than one member.
    case tooFewMembers(Int)
    /// More members than the machine's memory holds: the members asked for, the bytes one
    /// member needs, the most that fit, and the machine's physical memory in bytes.
    case tooManyMembers(Int, bytesPerMember: Int, fit: Int, memory: UInt64)

    public var description: String {
        switch self {
        case .tooFewMembers(let members): return "an ensemble needs at least one member, found \(members)"
        case .tooManyMembers(let members, let bytes, let fit, let memory):
            let gb = { (bytes: Double) in String(format: "%.1f GB", bytes / 1e9) }
            return "an ensemble of \(members) members needs about \(gb(Double(members) * Double(bytes))) (\(bytes) bytes per member); at most \(fit) fit in half of this machine's \(gb(Double(memory))) of memory"
        }
    }
}
