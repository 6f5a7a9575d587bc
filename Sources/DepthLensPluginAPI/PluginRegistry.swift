import Foundation

/// The one place schedules and metrics are registered and looked up by name.
///
/// Built-ins, plugins linked into an executable, and plugins loaded from shared
/// libraries all register here; analyses only ever ask the registry.
public final class PluginRegistry: @unchecked Sendable {
    /// The registry the command-line tool uses.
    public static let shared = PluginRegistry()

    private let lock = NSLock()
    private var scheduleTable: [String: ScheduleDescriptor] = [:]
    private var metricTable: [String: MetricDescriptor] = [:]

    public init() {}

    /// Adds a schedule. A later registration of the same name replaces the earlier one.
    public func register(_ schedule: ScheduleDescriptor) {
        lock.lock(); defer { lock.unlock() }
        scheduleTable[schedule.name] = schedule
    }

    /// Adds a metric. A later registration of the same name replaces the earlier one.
    public func register(_ metric: MetricDescriptor) {
        lock.lock(); defer { lock.unlock() }
        metricTable[metric.name] = metric
    }

    /// Every schedule, by name.
    public var schedules: [ScheduleDescriptor] {
        lock.lock(); defer { lock.unlock() }
        return scheduleTable.values.sorted { $0.name < $1.name }
    }

    /// Every metric, by name.
    public var metrics: [MetricDescriptor] {
        lock.lock(); defer { lock.unlock() }
        return metricTable.values.sorted { $0.name < $1.name }
    }

    public func schedule(named name: String) throws -> ScheduleDescriptor {
        lock.lock(); defer { lock.unlock() }
        guard let found = scheduleTable[name] else {
            throw PluginError(spec: name, message: "unknown schedule (known: \(scheduleTable.keys.sorted().joined(separator: ", ")))")
        }
        return found
    }

    public func metric(named name: String) throws -> MetricDescriptor {
        lock.lock(); defer { lock.unlock() }
        guard let found = metricTable[name] else {
            throw PluginError(spec: name, message: "unknown metric (known: \(metricTable.keys.sorted().joined(separator: ", ")))")
        }
        return found
    }

    /// p_l for every block of `blocks` under the schedule `spec` (such as
    /// `linear:pL=0.5` or `constant:p=0.8,only=identity`), validated: one value per
    /// block, each in [0, 1].
    /// - Throws: ``PluginError`` naming the spec for an unknown schedule or parameter, a
    ///   bad value, or a schedule that returns the wrong count or a value outside [0, 1].
    public func survivalProbabilities(_ spec: String, for blocks: [BlockSpec]) throws -> [Double] {
        let parsed = try PluginSpec.parse(spec)
        let descriptor = try schedule(named: parsed.name)
        let own = Set(descriptor.parameters.map(\.name))
        let generic = ScheduleOptions.parameters.filter { !own.contains($0.name) }
        let arguments = try PluginArguments(spec: parsed, parameters: descriptor.parameters + generic)
        let only = try arguments.text("only")
        guard only == "all" || only == "identity" else {
            throw PluginError(spec: spec, message: "'only' must be all or identity, found '\(only)'")
        }
        let perStage = try arguments.boolean("per_stage")
        let schedule = try descriptor.make(arguments)
        let groups: [[BlockSpec]] = perStage ? Dictionary(grouping: blocks, by: \.stage).sorted { $0.key < $1.key }.map(\.value)
            : [blocks]
        var probabilities: [Double] = []
        for group in groups {
            let renumbered = group.enumerated().map { offset, block -> BlockSpec in
                var copy = block
                copy.index = offset + 1
                return copy
            }
            let values = try schedule.survivalProbabilities(for: renumbered)
            guard values.count == group.count else {
                throw PluginError(spec: spec, message: "the schedule returned \(values.count) probabilities for \(group.count) blocks")
            }
            probabilities += values
        }
        if let bad = probabilities.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            throw PluginError(spec: spec, message: "the schedule gave block \(bad + 1) the survival probability \(probabilities[bad]), outside [0, 1]")
        }
        if only == "identity" {
            for (i, block) in blocks.enumerated() where block.shortcut != .identity { probabilities[i] = 1 }
        }
        return probabilities
    }

    /// A fresh accumulator for the metric `spec` (such as `ece:bins=15`).
    public func makeMetric(_ spec: String, classes: Int) throws -> (descriptor: MetricDescriptor, accumulator: any MetricAccumulator) {
        let parsed = try PluginSpec.parse(spec)
        let descriptor = try metric(named: parsed.name)
        let arguments = try PluginArguments(spec: parsed, parameters: descriptor.parameters)
        return (descriptor, try descriptor.make(arguments, classes))
    }
}
