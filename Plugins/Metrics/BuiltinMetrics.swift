import DepthLensPluginAPI

/// The metrics DepthLens ships. Member-scope metrics read the batch's predictive
/// distribution (the ensemble mean, or one member); ensemble-scope metrics read the
/// members jointly. All are means over examples unless their documentation says otherwise,
/// computed in double precision.
public enum BuiltinMetrics {
    /// Every built-in metric.
    public static let all: [MetricDescriptor] = [
        AccuracyMetric.descriptor,      // accuracy / top{k}_accuracy
        NLLMetric.descriptor,           // nll
        GibbsNLLMetric.descriptor,      // gibbs_nll
        BrierMetric.descriptor,         // brier
        MemberBrierMetric.descriptor,   // member_brier
        CalibrationMetric.descriptor,   // ece, mce, rmsce
        EntropyMetric.descriptor,       // predictive_entropy
        UncertaintyMetric.descriptor,   // expected_entropy, mutual_information
        DiversityMetric.descriptor,     // disagreement, variation_ratio, pairwise_kl
        AgreementMetric.descriptor,     // agreement
        ReferenceKLMetric.descriptor,   // reference_kl
        DiscordanceMetric.descriptor,   // discordant_lost, discordant_gained
        AURCMetric.descriptor,          // aurc, eaurc
    ]

    /// Registers every built-in metric.
    public static func register(in registry: PluginRegistry) {
        for metric in all { registry.register(metric) }
    }
}
