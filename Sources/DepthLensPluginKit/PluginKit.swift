import CDepthLensPlugin
#if canImport(Glibc)
import Glibc
#endif

/// One parameter a plugin declares: its name, kind (`number`, `integer`, `boolean`,
/// `text`, `numbers`, `path`), default (nil when required) and meaning.
public struct PluginKitParameter: Sendable {
    public var name: String
    public var kind: String
    public var defaultValue: String?
    public var help: String

    public init(_ name: String, kind: String = "number", default defaultValue: String? = nil, help: String = "") {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
    }
}

/// What the host tells a schedule about one block.
public struct PluginBlock: Sendable {
    /// 1...count within the list given (the network, or one stage).
    public var index: Int
    public var stage: Int
    public var inChannels: Int
    public var outChannels: Int
    public var stride: Int
    public var identityShortcut: Bool
}

/// An error a plugin reports; the host shows its message.
public struct PluginKitError: Error {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// A survival schedule in a shared-library plugin.
public protocol PluginSchedule {
    static var name: String { get }
    static var summary: String { get }
    static var parameters: [PluginKitParameter] { get }
    /// p_l for every block; `arguments` holds every parameter, defaults filled in.
    static func survivalProbabilities(arguments: [String: String], blocks: [PluginBlock]) throws -> [Double]
}

/// A metric in a shared-library plugin: one instance per analysis, fed batch by batch.
public protocol PluginMetric: AnyObject {
    static var name: String { get }
    static var summary: String { get }
    /// True for a function of the members jointly; false for one of a single predictive distribution.
    static var ensembleScope: Bool { get }
    static var parameters: [PluginKitParameter] { get }
    init(arguments: [String: String], classes: Int) throws
    /// memberLogits[m] holds N x C logits of member m; reference, the full network's, when given.
    func add(memberLogits: [[Float]], labels: [Int], reference: [Float]?) throws
    func results() -> [(name: String, value: Double)]
}

extension PluginSchedule {
    public static var parameters: [PluginKitParameter] { [] }
}

extension PluginMetric {
    public static var ensembleScope: Bool { false }
    public static var parameters: [PluginKitParameter] { [] }
}

/// What the plugin library exports. Call ``export(schedules:metrics:)`` from
/// `depthlens_plugin_init`:
///
///     @_cdecl("depthlens_plugin_init")
///     public func pluginInit() { DepthLensPlugin.export(schedules: [Cosine.self]) }
public enum DepthLensPlugin {
    nonisolated(unsafe) static var schedules: [any PluginSchedule.Type] = []
    nonisolated(unsafe) static var metrics: [any PluginMetric.Type] = []
    nonisolated(unsafe) static var scheduleTable: [UnsafeMutablePointer<dl_schedule_v1>] = []
    nonisolated(unsafe) static var metricTable: [UnsafeMutablePointer<dl_metric_v1>] = []

    /// Declares the library's schedules and metrics. The C descriptions are built once
    /// and live as long as the library is loaded.
    public static func export(schedules: [any PluginSchedule.Type] = [], metrics: [any PluginMetric.Type] = []) {
        self.schedules = schedules
        self.metrics = metrics
        scheduleTable = schedules.enumerated().map { index, type in
            let entry = UnsafeMutablePointer<dl_schedule_v1>.allocate(capacity: 1)
            let (count, list) = cParameters(type.parameters)
            entry.initialize(to: dl_schedule_v1(
                name: UnsafePointer(strdup(type.name)), summary: UnsafePointer(strdup(type.summary)),
                parameter_count: count, parameters: list, context: UnsafeRawPointer(bitPattern: index + 1),
                survival: scheduleTrampoline))
            return entry
        }
        metricTable = metrics.enumerated().map { index, type in
            let entry = UnsafeMutablePointer<dl_metric_v1>.allocate(capacity: 1)
            let (count, list) = cParameters(type.parameters)
            entry.initialize(to: dl_metric_v1(
                name: UnsafePointer(strdup(type.name)), summary: UnsafePointer(strdup(type.summary)),
                scope: type.ensembleScope ? 1 : 0, parameter_count: count, parameters: list,
                context: UnsafeRawPointer(bitPattern: index + 1), create: metricCreate, add: metricAdd,
                result_count: metricResultCount, result: metricResult, destroy: metricDestroy))
            return entry
        }
    }

    private static func cParameters(_ list: [PluginKitParameter]) -> (Int32, UnsafePointer<dl_parameter>?) {
        guard !list.isEmpty else { return (0, nil) }
        let buffer = UnsafeMutablePointer<dl_parameter>.allocate(capacity: list.count)
        for (i, p) in list.enumerated() {
            (buffer + i).initialize(to: dl_parameter(
                name: UnsafePointer(strdup(p.name)), kind: UnsafePointer(strdup(p.kind)),
                default_value: p.defaultValue.map { UnsafePointer(strdup($0)) }, help: UnsafePointer(strdup(p.help))))
        }
        return (Int32(list.count), UnsafePointer(buffer))
    }
}

func readArguments(_ keys: UnsafePointer<UnsafePointer<CChar>?>?, _ values: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int32) -> [String: String] {
    var arguments: [String: String] = [:]
    for i in 0..<Int(count) {
        if let key = keys?[i], let value = values?[i] { arguments[String(cString: key)] = String(cString: value) }
    }
    return arguments
}

func report(_ error: Error, _ buffer: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int32 {
    let message = (error as? PluginKitError)?.message ?? "\(error)"
    if let buffer, size > 0 {
        let bytes = Array(message.utf8.prefix(size - 1))
        for (i, byte) in bytes.enumerated() { buffer[i] = CChar(bitPattern: byte) }
        buffer[bytes.count] = 0
    }
    return 1
}

func slot(_ context: UnsafeRawPointer?) -> Int { Int(bitPattern: context) - 1 }

let scheduleTrampoline: @convention(c) (UnsafeRawPointer?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?,
                                        Int32, UnsafePointer<dl_block_info>?, Int32, UnsafeMutablePointer<Double>?,
                                        UnsafeMutablePointer<CChar>?, Int) -> Int32 = { context, keys, values, argc, blocks, count, out, buffer, size in
    let type = DepthLensPlugin.schedules[slot(context)]
    let list = (0..<Int(count)).map { i -> PluginBlock in
        let b = blocks![i]
        return PluginBlock(index: Int(b.index), stage: Int(b.stage), inChannels: Int(b.in_channels), outChannels: Int(b.out_channels),
                           stride: Int(b.stride), identityShortcut: b.identity_shortcut != 0)
    }
    do {
        let p = try type.survivalProbabilities(arguments: readArguments(keys, values, argc), blocks: list)
        guard p.count == Int(count) else { throw PluginKitError("returned \(p.count) probabilities for \(count) blocks") }
        for (i, value) in p.enumerated() { out![i] = value }
        return 0
    } catch {
        return report(error, buffer, size)
    }
}
