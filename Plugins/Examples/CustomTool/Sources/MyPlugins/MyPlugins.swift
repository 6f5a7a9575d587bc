import DepthLensPluginAPI

/// This package's schedules and metrics.
public enum MyPlugins {
    /// Adds them to `registry`; `my-depthlens` calls this at start-up.
    public static func register(in registry: PluginRegistry) {
        registry.register(ExponentialSchedule.descriptor)
        registry.register(ErrorMetric.descriptor)
    }
}
