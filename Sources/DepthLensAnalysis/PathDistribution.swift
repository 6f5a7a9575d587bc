import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// The distribution of the number of active blocks: exact Poisson-binomial under a
/// schedule, and the unrolled view of Veit et al. 2016, where the 2^L paths of an L-block
/// network have lengths distributed Binomial(L, 1/2).
public enum PathDistribution {
    /// P(K = k) for k = 0...L when block l is active with probability p_l, independently
    /// (dynamic programming over blocks; exact up to rounding).
    public static func poissonBinomial(_ p: [Double]) -> [Double] {
        var distribution = [1.0]
        for q in p {
            var next = [Double](repeating: 0, count: distribution.count + 1)
            for (k, mass) in distribution.enumerated() {
                next[k] += mass * (1 - q)
                next[k + 1] += mass * q
            }
            distribution = next
        }
        return distribution
    }

    /// C(L, k) / 2^L for k = 0...L, computed in log space so large L does not overflow.
    public static func unrolledBinomial(blocks count: Int) -> [Double] {
        let n = Double(count)
        let logTotal: Double = lgamma(n + 1) - n * log(2.0)
        return (0...count).map { k -> Double in
            let logChoose: Double = logTotal - lgamma(Double(k) + 1) - lgamma(n - Double(k) + 1)
            return exp(logChoose)
        }
    }

    /// Mean and variance of the number of active blocks.
    public static func moments(_ p: [Double]) -> (mean: Double, variance: Double) {
        (p.reduce(0, +), p.reduce(0) { $0 + $1 * (1 - $1) })
    }
}
