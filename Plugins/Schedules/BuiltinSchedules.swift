import DepthLensPluginAPI

/// The schedules DepthLens ships.
public enum BuiltinSchedules {
    /// Every built-in schedule.
    public static let all: [ScheduleDescriptor] = [
        ConstantSchedule.descriptor,
        LinearSchedule.descriptor,
        LinearFromZeroSchedule.descriptor,
        LinearEfficientNetSchedule.descriptor,
        CustomSchedule.descriptor,
    ]

    /// Registers every built-in schedule.
    public static func register(in registry: PluginRegistry) {
        for schedule in all { registry.register(schedule) }
    }
}
