import DepthLensPluginAPI

/// The sum over the examples of an N x C distribution p of the Brier score
/// sum_c (p_c - onehot(y)_c)^2.
private func brierSum(_ p: [Double], labels: [Int], classes: Int) -> Double {
    var sum = 0.0
    for (i, label) in labels.enumerated() {
        for c in 0..<classes {
            let d = p[i * classes + c] - (c == label ? 1 : 0)
            sum += d * d
        }
    }
    return sum
}

/// Brier score of the predictive distribution (the ensemble mean), summed over classes
/// and averaged over examples: (1/N) sum_i sum_c (p_i,c - onehot(y_i)_c)^2, in [0, 2].
/// Result `brier`.
enum BrierMetric {
    static let descriptor = MetricDescriptor(
        name: "brier", summary: "Brier score sum_c (p_c - onehot_c)^2 of the predictive distribution",
        scope: .member, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "brier", names: ["brier"], classes: classes) { batch in
            [brierSum(batch.meanProbabilities, labels: batch.labels, classes: batch.classes)]
        }
    }
}

/// Member-averaged Brier score: (1/M) sum_m of member m's Brier score. Result `member_brier`.
enum MemberBrierMetric {
    static let descriptor = MetricDescriptor(
        name: "member_brier", summary: "mean over members of the member Brier score",
        scope: .ensemble, origin: .builtIn
    ) { _, classes in
        ExampleMeanAccumulator(metric: "member_brier", names: ["member_brier"], classes: classes) { batch in
            let total = (0..<batch.memberCount).reduce(0.0) {
                $0 + brierSum(batch.probabilities(member: $1), labels: batch.labels, classes: batch.classes)
            }
            return [total / Double(batch.memberCount)]
        }
    }
}
