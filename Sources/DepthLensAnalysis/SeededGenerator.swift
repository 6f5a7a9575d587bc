import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// A seeded random number generator (xoshiro256**, seeded through SplitMix64), so that
/// the same seed draws the same gates on every platform, thread count and batch size.
package struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotate(state.3, 45)
        return result
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A generator for stream `index` of this seed (independent draws per member or trial).
    public static func stream(seed: UInt64, _ index: Int) -> SeededGenerator {
        SeededGenerator(seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ 1)
    }
}

/// The stream numbers of the draws that are numbered by a group and a trial: trial t of
/// k random blocks deleted (`lesion`), of depth d (`depth`), of s random swaps (`reorder`).
///
/// The first scheme was `base + group * 10_000 + t` (base 1,000,000, 2,000,000, 3,000,000),
/// which gives trial 10,000 of group g the stream of trial 0 of group g + 1: from 10,000
/// trials on, draws repeated (and k + 1 random blocks deleted a superset of the k blocks of
/// another trial). Trials below 10,000 keep those stream numbers, so every result computed
/// before is unchanged; trials from 10,000 on take numbers with bit 62 set, the kind in
/// bits 60-61, the group in bits 38-59 and the trial in bits 0-37, which no other draw of
/// DepthLens uses (all other stream numbers stay far below 2^62). Within one kind, two
/// different (group, trial) pairs with group < ``groupLimit`` and trial < ``trialLimit``
/// therefore always get different streams (``SeededGenerator/stream(seed:_:)`` is one to
/// one in the stream number).
package enum TrialStreams {
    package enum Kind: Int, Sendable {
        case randomLesion = 1, fixedDepth = 2, reordering = 3

        /// The first scheme's base.
        var base: Int { rawValue * 1_000_000 }
    }

    /// Trials below this keep the first scheme's stream numbers.
    package static let firstSchemeTrials = 10_000
    /// Groups (k, depth, swaps) below 2^22 and trials below 2^38 get distinct streams: far
    /// beyond any network's blocks, the 1,000,000 swaps the command line allows, and the
    /// trials half of a machine's memory can hold the results of (4 KB each: 2^38 trials
    /// need 1 PB).
    package static let groupLimit = 1 << 22, trialLimit = 1 << 38

    /// The stream number of trial `trial` of `group`.
    package static func index(_ kind: Kind, group: Int, trial: Int) -> Int {
        precondition(group >= 0 && trial >= 0, "stream numbers are for non-negative groups and trials")
        if trial < firstSchemeTrials { return kind.base + group * firstSchemeTrials + trial }
        precondition(group < groupLimit && trial < trialLimit, "group \(group), trial \(trial) are beyond the distinct streams; checked by TrialStreams.check")
        return 1 << 62 | kind.rawValue << 60 | group << 38 | trial
    }

    /// Refuses groups or trial counts beyond those that get distinct streams.
    package static func check(groups: [Int], trials: Int) throws {
        if let group = groups.first(where: { $0 >= groupLimit }) {
            throw TrialCountError.beyondDistinctStreams(what: "group \(group)", limit: "groups (k, depths, swaps) below \(groupLimit)")
        }
        if trials > trialLimit {
            throw TrialCountError.beyondDistinctStreams(what: "\(trials) trials", limit: "at most \(trialLimit) trials per k, depth or number of swaps")
        }
    }
}

/// Drawing gate masks.
package enum MaskSampling {
    /// Keeps block l with probability p_l.
    public static func bernoulli(_ p: [Double], using generator: inout SeededGenerator) -> [Bool] {
        p.map { generator.unit() < $0 }
    }

    /// Exactly `active` blocks kept, chosen uniformly among the C(L, active) subsets.
    public static func exactly(_ active: Int, of count: Int, using generator: inout SeededGenerator) -> [Bool] {
        var indices = Array(0..<count)
        // Partial Fisher-Yates: the first `active` positions are a uniform subset.
        for i in 0..<min(active, count) {
            let j = i + Int(generator.next() % UInt64(count - i))
            indices.swapAt(i, j)
        }
        var keep = [Bool](repeating: false, count: count)
        for i in indices.prefix(active) { keep[i] = true }
        return keep
    }
}
