import ArgumentParser
import Foundation

/// Upper bounds on the counts a user sets with flags (members, trials, k, swaps), checked
/// before any work, so that a mistyped count is a one-line refusal (exit 64) instead of an
/// allocation that takes the machine down or a loop that never ends.
///
/// An analysis keeps, for every sub-network it evaluates, its result rows (one per metric
/// value) and its gate mask until the files are written: about ``bytesPerSubNetwork``. At
/// most half of the machine's physical memory may go to them.
enum SizeBounds {
    /// Result rows (about ten metric values with their names) and a mask, generously.
    static let bytesPerSubNetwork = 4096
    /// Random swaps of one reordering: any order of a stage is reached with far fewer, so
    /// more only cost time.
    static let maximumSwaps = 1_000_000

    static var memory: UInt64 { ProcessInfo.processInfo.physicalMemory }

    /// The most sub-networks whose results fit in half of `memory`.
    static func subNetworksThatFit(memory: UInt64 = memory) -> Int {
        Int(min(memory / 2 / UInt64(bytesPerSubNetwork), UInt64(Int.max)))
    }

    /// Refuses `count` sub-networks (`factors` multiplied) when they do not fit.
    /// - Parameters:
    ///   - flag: the flag the user gave, named first in the message.
    ///   - factors: (value, what it counts) multiplied to the number of sub-networks.
    static func check(flag: String, _ factors: [(Int, String)], memory: UInt64 = memory) throws {
        var total = 1
        var overflow = false
        for (value, _) in factors {
            let (product, didOverflow) = total.multipliedReportingOverflow(by: max(value, 0))
            overflow = overflow || didOverflow
            total = didOverflow ? Int.max : product
        }
        let fit = subNetworksThatFit(memory: memory)
        guard overflow || total > fit else { return }
        let asked = factors.count == 1 ? "\(factors[0].0) \(factors[0].1)"
            : factors.map { "\($0.0) \($0.1)" }.joined(separator: " x ") + " = " + (overflow ? "more than \(Int.max)" : "\(total)") + " sub-networks"
        let need = Double(overflow ? Double(Int.max) : Double(total)) * Double(bytesPerSubNetwork)
        throw ValidationError("\(flag): \(asked) need about \(gigabytes(need)) for their results and masks (\(bytesPerSubNetwork) bytes per sub-network); at most \(fit) sub-networks fit in half of this machine's \(gigabytes(Double(memory))) of memory.")
    }

    /// Refuses a number of random swaps beyond ``maximumSwaps``.
    static func checkSwaps(_ counts: [Int]) throws {
        if let bad = counts.first(where: { $0 > maximumSwaps }) {
            throw ValidationError("--swaps: \(bad) random swaps asked; at most \(maximumSwaps) (any order of a stage is reached with far fewer; more would only take time).")
        }
    }

    /// The most images `--gradients` measures: they are held in memory together, with a
    /// tape of every activation per worker; more would only narrow intervals already set
    /// by the draws.
    static let maximumGradientImages = 100_000
    /// Path lengths assumed when bounding `--samples` before the network is known (a
    /// 1,000-block network has 1,001).
    static let assumedPathLengths = 1_001

    /// Refuses image and draw counts of `paths --gradients` below 1 or beyond what fits.
    static func checkGradientPaths(images: Int, samples: Int) throws {
        guard images >= 1 else { throw ValidationError("--gradient-images must be at least 1.") }
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1.") }
        guard images <= maximumGradientImages else {
            throw ValidationError("--gradient-images: \(images) images asked; at most \(maximumGradientImages) (they are held in memory together, and the intervals rest on the draws, not the images).")
        }
        try check(flag: "--samples", [(samples, "route patterns per path length"), (assumedPathLengths, "path lengths (a 1,000-block network)")])
    }

    static func gigabytes(_ bytes: Double) -> String { String(format: "%.1f GB", bytes / 1e9) }
}
