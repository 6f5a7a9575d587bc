import DepthLens

/// The metrics DepthLens ships.
public enum BuiltinMetrics {
    /// Every built-in metric.
    public static let all: [MetricDescriptor] = []

    /// Registers every built-in metric.
    public static func register(in registry: PluginRegistry) {
        for metric in all { registry.register(metric) }
    }
}
