import DepthLens

/// The schedules DepthLens ships.
public enum BuiltinSchedules {
    /// Every built-in schedule.
    public static let all: [ScheduleDescriptor] = []

    /// Registers every built-in schedule.
    public static func register(in registry: PluginRegistry) {
        for schedule in all { registry.register(schedule) }
    }
}
