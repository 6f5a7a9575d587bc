import DepthLensPluginAPI
import Foundation

/// H(p) = -sum_c p_c log p_c (natural log, 0 log 0 = 0) of row `row` of the batch's
/// predictive distribution, with log p from the stable logsumexp form.
private func predictiveEntropy(_ p: [Double], _ logP: [Double], row: Int, classes: Int) -> Double {
    var h = 0.0
    for c in 0..<classes where p[row * classes + c] > 0 { h -= p[row * classes + c] * logP[row * classes + c] }
    return h
}

/// Predictive entropy of the predictive distribution (the ensemble mean): the mean over
/// examples of H(p) = -sum_c p_c ln p_c, with 0 ln 0 = 0. Result `predictive_entropy`.
enum EntropyMetric {
    static let descriptor = MetricDescriptor(
        name: "entropy", summary: "predictive entropy H(p) in nats",
        scope: .member, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "entropy", names: ["predictive_entropy"], classes: classes) { batch in
            let p = batch.meanProbabilities, logP = batch.logMeanProbabilities
            return [(0..<batch.count).reduce(0.0) { $0 + predictiveEntropy(p, logP, row: $1, classes: batch.classes) }]
        }
    }
}

/// The entropy decomposition of the ensemble, means over examples (nats, 0 ln 0 = 0):
/// - `expected_entropy` = (1/M) sum_m H(p_m), the aleatoric part;
/// - `mutual_information` = H(p) - (1/M) sum_m H(p_m), the epistemic part (0 for M = 1).
enum UncertaintyMetric {
    static let descriptor = MetricDescriptor(
        name: "uncertainty", summary: "expected entropy (1/M) sum_m H(p_m) and mutual information H(p) - expected entropy",
        scope: .ensemble, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "uncertainty", names: ["expected_entropy", "mutual_information"], classes: classes) { batch in
            let C = batch.classes, M = Double(batch.memberCount)
            var expected = [Double](repeating: 0, count: batch.count)
            for m in 0..<batch.memberCount {
                let logP = batch.logProbabilities(member: m)
                for i in 0..<batch.count { expected[i] += entropy(logProbabilities: logP, row: i, classes: C) / M }
            }
            let p = batch.meanProbabilities, logP = batch.logMeanProbabilities
            var expectedSum = 0.0, informationSum = 0.0
            for i in 0..<batch.count {
                expectedSum += expected[i]
                informationSum += predictiveEntropy(p, logP, row: i, classes: C) - expected[i]
            }
            return [expectedSum, informationSum]
        }
    }
}
