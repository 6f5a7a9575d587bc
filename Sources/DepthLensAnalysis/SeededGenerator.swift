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
