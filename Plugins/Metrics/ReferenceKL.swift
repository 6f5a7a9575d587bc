import DepthLensPluginAPI
import Foundation

/// Divergence from the reference network, a mean over examples: `reference_kl` is
/// KL(p_ref || p) = sum_c p_ref,c (log p_ref,c - log p_c), where p_ref is the softmax of the
/// batch's reference logits (the analyses pass the deterministic network under the
/// checkpoint's test-time rule) and p the predictive distribution (the member's softmax, or
/// the mean of the members'). From log-probabilities: a class whose p_ref,c underflows to 0
/// contributes nothing; identical logits give exactly 0.
///
/// If any batch comes without ``PredictionBatch/referenceLogits``, the result is NaN.
enum ReferenceKLMetric {
    static let descriptor = MetricDescriptor(
        name: "reference_kl", summary: "KL(p_ref || p) from the deterministic network under the test-time rule, in nats (NaN without reference logits)",
        scope: .member, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "reference_kl", names: ["reference_kl"], classes: classes) { batch in
            guard let referenceLog = batch.referenceLogProbabilities else { return [.nan] }
            let C = batch.classes
            precondition(referenceLog.count == batch.count * C, "reference_kl: reference logits do not match N x C")
            let logP = batch.memberCount == 1 ? batch.logProbabilities(member: 0) : batch.logMeanProbabilities
            var sum = 0.0
            for i in 0..<batch.count {
                for c in 0..<C {
                    let logR = referenceLog[i * C + c]
                    let r = exp(logR)
                    guard r > 0 else { continue }
                    sum += r * (logR - logP[i * C + c])
                }
            }
            return [sum]
        }
    }
}
