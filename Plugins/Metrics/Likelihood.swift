import DepthLensPluginAPI

/// Negative log-likelihood of the predictive distribution:
/// nll = -(1/N) sum_i log p_i[y_i], with log p = logsumexp_m(log p_m) - log M
/// (``PredictionBatch/logMeanProbabilities``), stable for confident members. Result `nll`.
enum NLLMetric {
    static let descriptor = MetricDescriptor(
        name: "nll", summary: "negative log-likelihood of the predictive distribution (logsumexp form)",
        scope: .member, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "nll", names: ["nll"], classes: classes) { batch in
            let logP = batch.logMeanProbabilities
            var sum = 0.0
            for (i, label) in batch.labels.enumerated() { sum -= logP[i * batch.classes + label] }
            return [sum]
        }
    }
}

/// Gibbs NLL: the mean over members of each member's NLL,
/// gibbs_nll = (1/M) sum_m -(1/N) sum_i log p_m,i[y_i]. Result `gibbs_nll`.
enum GibbsNLLMetric {
    static let descriptor = MetricDescriptor(
        name: "gibbs_nll", summary: "mean over members of the member NLL",
        scope: .ensemble, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "gibbs_nll", names: ["gibbs_nll"], classes: classes) { batch in
            var sum = 0.0
            for m in 0..<batch.memberCount {
                let logP = batch.logProbabilities(member: m)
                for (i, label) in batch.labels.enumerated() { sum -= logP[i * batch.classes + label] }
            }
            return [sum / Double(batch.memberCount)]
        }
    }
}
