import DepthLensPluginAPI
import Foundation

/// How much the members differ, means over examples. Each member votes for its argmax
/// (first maximal class).
/// - `disagreement`: the fraction of the M(M-1)/2 unordered member pairs whose votes
///   differ; 0 when M < 2.
/// - `variation_ratio`: 1 - (votes for the modal class) / M.
/// - `pairwise_kl`: the average over the M(M-1) ordered pairs m != n of
///   KL(p_m || p_n) = sum_c p_m,c (log p_m,c - log p_n,c), from log-probabilities (a class
///   whose p_m,c underflows to 0 contributes nothing); 0 when M < 2.
enum DiversityMetric {
    static let descriptor = MetricDescriptor(
        name: "diversity", summary: "member disagreement, variation ratio and average pairwise KL",
        scope: .ensemble, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "diversity", names: ["disagreement", "variation_ratio", "pairwise_kl"], classes: classes) { batch in
            let C = batch.classes, M = batch.memberCount
            let logP = (0..<M).map { batch.logProbabilities(member: $0) }
            var disagreement = 0.0, variation = 0.0, divergence = 0.0
            var votes = [Int](repeating: 0, count: M)
            var tally = [Int](repeating: 0, count: C)
            for i in 0..<batch.count {
                for m in 0..<M { votes[m] = argmax(logP[m], row: i, classes: C) }
                for c in 0..<C { tally[c] = 0 }
                for vote in votes { tally[vote] += 1 }
                variation += 1 - Double(tally.max()!) / Double(M)
                guard M >= 2 else { continue }
                var differing = 0
                for a in 0..<M { for b in (a + 1)..<M where votes[a] != votes[b] { differing += 1 } }
                disagreement += Double(differing) / Double(M * (M - 1) / 2)
                var kl = 0.0
                for a in 0..<M {
                    for c in 0..<C {
                        let logPa = logP[a][i * C + c]
                        let pa = exp(logPa)
                        guard pa > 0 else { continue }
                        for b in 0..<M where b != a { kl += pa * (logPa - logP[b][i * C + c]) }
                    }
                }
                divergence += kl / Double(M * (M - 1))
            }
            return [disagreement, variation, divergence]
        }
    }
}
