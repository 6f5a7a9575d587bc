import Foundation

/// The interval estimates and the paired test the analyses report (docs/results-csv.md,
/// "Intervals and tests"). Every method is deterministic: the bootstrap draws from the
/// seeded generator, so the same seed gives the same intervals.
public enum Statistics {
    /// The normal quantile of a two-sided 95% interval, Φ⁻¹(0.975).
    public static let z95 = 1.959963984540054

    /// Bootstrap resamples of every bootstrap interval.
    public static let bootstrapResamples = 2000

    /// McNemar's test is exact below this many discordant examples, chi-square above.
    public static let exactMcNemarBelow = 25

    /// The Wilson score interval of a proportion `successes / n` at 95% (no continuity
    /// correction; scipy's `binomtest(...).proportion_ci(method="wilson")`).
    /// nil when n is 0.
    public static func wilson(successes: Double, n: Int) -> (low: Double, high: Double)? {
        guard n > 0 else { return nil }
        let n = Double(n), p = successes / n, z = z95, z2 = z * z
        let centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        let half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        return (max(0, centre - half), min(1, centre + half))
    }

    /// Sample quantile with linear interpolation between order statistics (Hyndman and
    /// Fan's type 7, numpy's default `percentile`). `sorted` must be sorted and non-empty.
    public static func quantile(sorted: [Double], _ q: Double) -> Double {
        let h = Double(sorted.count - 1) * q
        let lower = Int(h.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (h - Double(lower)) * (sorted[upper] - sorted[lower])
    }

    public static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

    /// The median (the mean of the two middle values for an even count).
    public static func median(_ values: [Double]) -> Double { quantile(sorted: values.sorted(), 0.5) }

    /// Mean and median of `values` with percentile bootstrap 95% intervals: B resamples
    /// of the values with replacement, index `next() % n` from `generator`; each
    /// resample gives a mean and a median; the interval is the 2.5th and 97.5th
    /// percentiles (type 7) of each. One value gives a zero-width interval. The
    /// generator is stream `stream` of `seed` (``SeededGenerator``).
    public static func bootstrap(_ values: [Double], resamples: Int = bootstrapResamples,
                                 seed: UInt64, stream: Int) -> (mean: Estimate, median: Estimate) {
        precondition(!values.isEmpty, "bootstrap of no values")
        var generator = SeededGenerator.stream(seed: seed, stream)
        var means: [Double] = [], medians: [Double] = []
        means.reserveCapacity(resamples)
        medians.reserveCapacity(resamples)
        let n = values.count
        var resample = [Double](repeating: 0, count: n)
        for _ in 0..<resamples {
            for i in 0..<n { resample[i] = values[Int(generator.next() % UInt64(n))] }
            means.append(mean(resample))
            medians.append(median(resample))
        }
        means.sort()
        medians.sort()
        return (Estimate(value: mean(values), low: quantile(sorted: means, 0.025), high: quantile(sorted: means, 0.975)),
                Estimate(value: median(values), low: quantile(sorted: medians, 0.025), high: quantile(sorted: medians, 0.975)))
    }

    /// A point estimate with its 95% interval.
    public struct Estimate: Sendable, Equatable {
        public var value: Double
        public var low: Double
        public var high: Double
    }

    /// McNemar's test of two classifiers on the same examples, from the discordant
    /// counts: `lost` examples only the first (reference) gets right, `gained` only the
    /// second. Below ``exactMcNemarBelow`` discordant examples the exact binomial test,
    /// p = min(1, 2 P(X ≤ min(lost, gained))) for X ~ Binomial(lost + gained, 1/2)
    /// (statsmodels' `mcnemar(exact=True)`); otherwise chi-square with one degree of
    /// freedom on (|lost - gained| - 1)² / (lost + gained), Edwards' continuity correction
    /// (statsmodels' `mcnemar(exact=False, correction=True)`). No discordant example: p = 1.
    public static func mcNemar(lost: Int, gained: Int) -> (p: Double, method: String) {
        let n = lost + gained
        guard n > 0 else { return (1, "mcnemar-exact") }
        if n < exactMcNemarBelow {
            let low = min(lost, gained)
            var cdf = 0.0, term = pow(0.5, Double(n))   // C(n, 0) / 2^n
            for i in 0...low {
                if i > 0 { term *= Double(n - i + 1) / Double(i) }
                cdf += term
            }
            return (min(1, 2 * cdf), "mcnemar-exact")
        }
        let d = Double(abs(lost - gained)) - 1
        let statistic = d * d / Double(n)
        // The chi-square(1) survival function: P(Z² > x) = erfc(sqrt(x / 2)).
        return (erfc((statistic / 2).squareRoot()), "mcnemar-chi2-corrected")
    }
}
