import CDepthLensPlugin
import DepthLensPluginAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Loads schedules and metrics from shared libraries through the C ABI of
/// `depthlens_plugin.h` (version ``abiVersion``). Only C types cross the boundary.
public enum SharedLibraryPlugins {
    /// The plugin ABI version this build speaks.
    public static let abiVersion = UInt32(DEPTHLENS_PLUGIN_ABI_VERSION)

    /// Opens `path`, checks its ABI version, and registers what it exports.
    /// - Returns: the names of the schedules and metrics it added.
    /// - Throws: ``PluginError`` naming the library for a missing file, a library that
    ///   cannot be opened, a missing symbol, an ABI version mismatch, or a malformed entry.
    @discardableResult
    public static func load(_ path: String, into registry: PluginRegistry) throws -> [String] {
        func fail(_ message: String) -> PluginError { PluginError(spec: path, message: message) }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("no such file") }
        // dlopen searches the library path for a bare name; a path with a slash is used as given.
        let resolved = path.contains("/") ? path : "./" + path
        guard let handle = dlopen(resolved, RTLD_NOW | RTLD_LOCAL) else {
            throw fail("cannot load: \(dlerror().map { String(cString: $0) } ?? "unknown error")")
        }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        typealias VersionFunction = @convention(c) () -> UInt32
        typealias VoidFunction = @convention(c) () -> Void
        typealias CountFunction = @convention(c) () -> Int32
        typealias ScheduleFunction = @convention(c) (Int32) -> UnsafePointer<dl_schedule_v1>?
        typealias MetricFunction = @convention(c) (Int32) -> UnsafePointer<dl_metric_v1>?
        guard let version = symbol("depthlens_plugin_abi_version", as: VersionFunction.self) else {
            throw fail("does not export depthlens_plugin_abi_version; is it a DepthLens plugin? (see docs/plugins.md)")
        }
        let theirs = version()
        guard theirs == abiVersion else {
            throw fail("was built for plugin ABI version \(theirs); this DepthLens speaks version \(abiVersion); rebuild the plugin against this DepthLens")
        }
        symbol("depthlens_plugin_init", as: VoidFunction.self)?()
        var added: [String] = []
        if let count = symbol("depthlens_plugin_schedule_count", as: CountFunction.self) {
            guard let get = symbol("depthlens_plugin_schedule", as: ScheduleFunction.self) else {
                throw fail("exports depthlens_plugin_schedule_count but not depthlens_plugin_schedule")
            }
            for i in 0..<(try checkedCount(count(), "depthlens_plugin_schedule_count()", path: path)) {
                guard let entry = get(i) else { throw fail("depthlens_plugin_schedule(\(i)) returned NULL") }
                let descriptor = try scheduleDescriptor(entry.pointee, path: path)
                registry.register(descriptor)
                added.append(descriptor.name)
            }
        }
        if let count = symbol("depthlens_plugin_metric_count", as: CountFunction.self) {
            guard let get = symbol("depthlens_plugin_metric", as: MetricFunction.self) else {
                throw fail("exports depthlens_plugin_metric_count but not depthlens_plugin_metric")
            }
            for i in 0..<(try checkedCount(count(), "depthlens_plugin_metric_count()", path: path)) {
                guard let entry = get(i) else { throw fail("depthlens_plugin_metric(\(i)) returned NULL") }
                let descriptor = try metricDescriptor(entry.pointee, path: path)
                registry.register(descriptor)
                added.append(descriptor.name)
            }
        }
        guard !added.isEmpty else { throw fail("exports no schedules and no metrics") }
        return added
    }

    /// The most entries (schedules, metrics, parameters, results) one count from a plugin
    /// may declare: far more than any plugin needs, few enough to loop over.
    static let maximumCount: Int32 = 10_000

    /// A count a plugin returned, checked: 0...``maximumCount``.
    static func checkedCount(_ count: Int32, _ what: String, path: String) throws -> Int32 {
        guard count >= 0, count <= maximumCount else {
            throw PluginError(spec: path, message: "\(what) is \(count); a count must be between 0 and \(maximumCount)")
        }
        return count
    }

    private static func string(_ pointer: UnsafePointer<CChar>?, _ what: String, path: String) throws -> String {
        guard let pointer else { throw PluginError(spec: path, message: "\(what) is NULL") }
        return String(cString: pointer)
    }

    private static func parameters(_ list: UnsafePointer<dl_parameter>?, count: Int32, owner: String, path: String) throws -> [PluginParameter] {
        guard try checkedCount(count, "\(owner): parameter_count", path: path) > 0 else { return [] }
        guard let list else { throw PluginError(spec: path, message: "\(owner) declares \(count) parameters but gives none") }
        return try (0..<Int(count)).map { i in
            let p = list[i]
            let name = try string(p.name, "\(owner): parameter \(i) name", path: path)
            let kindText = try string(p.kind, "\(owner): parameter '\(name)' kind", path: path)
            guard let kind = PluginParameter.Kind(rawValue: kindText) else {
                throw PluginError(spec: path, message: "\(owner): parameter '\(name)' has unknown kind '\(kindText)'")
            }
            return PluginParameter(name, kind, default: p.default_value.map { String(cString: $0) },
                                   help: p.help.map { String(cString: $0) } ?? "")
        }
    }

    private static func scheduleDescriptor(_ entry: dl_schedule_v1, path: String) throws -> ScheduleDescriptor {
        let name = try string(entry.name, "a schedule's name", path: path)
        guard let survival = entry.survival else { throw PluginError(spec: path, message: "schedule '\(name)' has no survival function") }
        let function = SurvivalFunction(call: survival, context: entry.context, name: name)
        return ScheduleDescriptor(
            name: name, summary: entry.summary.map { String(cString: $0) } ?? "",
            parameters: try parameters(entry.parameters, count: entry.parameter_count, owner: "schedule '\(name)'", path: path),
            origin: .loaded(path: path)
        ) { arguments in LoadedSchedule(function: function, arguments: arguments.values.sorted { $0.key < $1.key }) }
    }

    private static func metricDescriptor(_ entry: dl_metric_v1, path: String) throws -> MetricDescriptor {
        let name = try string(entry.name, "a metric's name", path: path)
        guard entry.scope == 0 || entry.scope == 1 else {
            throw PluginError(spec: path, message: "metric '\(name)' has scope \(entry.scope); it must be 0 (member) or 1 (ensemble)")
        }
        guard entry.create != nil, entry.add != nil, entry.result_count != nil, entry.result != nil, entry.destroy != nil else {
            throw PluginError(spec: path, message: "metric '\(name)' lacks one of create, add, result_count, result, destroy")
        }
        let table = MetricTable(entry: entry, name: name)
        return MetricDescriptor(
            name: name, summary: entry.summary.map { String(cString: $0) } ?? "",
            scope: entry.scope == 1 ? .ensemble : .member,
            parameters: try parameters(entry.parameters, count: entry.parameter_count, owner: "metric '\(name)'", path: path),
            origin: .loaded(path: path)
        ) { arguments, classes in
            try LoadedMetric(table: table, arguments: arguments.values.sorted { $0.key < $1.key }, classes: classes)
        }
    }
}

/// Calls a C function with the arguments as two arrays of C strings.
func withCArguments<R>(_ arguments: [(key: String, value: String)],
                       _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>, Int32) throws -> R) rethrows -> R {
    let keys = arguments.map { strdup($0.key) }
    let values = arguments.map { strdup($0.value) }
    defer { (keys + values).forEach { free($0) } }
    let keyPointers = keys.map { UnsafePointer($0) }
    let valuePointers = values.map { UnsafePointer($0) }
    return try keyPointers.withUnsafeBufferPointer { k in
        try valuePointers.withUnsafeBufferPointer { v in
            try body(k.baseAddress!, v.baseAddress!, Int32(arguments.count))
        }
    }
}

/// Runs `body` with an error buffer and turns a non-zero status into a ``PluginError``.
func callingPlugin(_ name: String, _ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
    var buffer = [CChar](repeating: 0, count: 1024)
    let status = buffer.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
    if status != 0 {
        buffer[buffer.count - 1] = 0
        let message = String(cString: buffer)
        throw PluginError(spec: name, message: message.isEmpty ? "failed (status \(status))" : message)
    }
}

/// A plugin's survival function; the pointer stays valid while the library is loaded.
struct SurvivalFunction: @unchecked Sendable {
    let call: @convention(c) (UnsafeRawPointer?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?, Int32,
                              UnsafePointer<dl_block_info>?, Int32, UnsafeMutablePointer<Double>?,
                              UnsafeMutablePointer<CChar>?, Int) -> Int32
    let context: UnsafeRawPointer?
    let name: String
}

struct LoadedSchedule: SurvivalSchedule {
    let function: SurvivalFunction
    let arguments: [(key: String, value: String)]

    func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
        let info = blocks.map {
            dl_block_info(index: Int32($0.index), stage: Int32($0.stage), in_channels: Int32($0.inChannels),
                          out_channels: Int32($0.outChannels), stride: Int32($0.stride),
                          identity_shortcut: $0.shortcut == .identity ? 1 : 0)
        }
        var out = [Double](repeating: .nan, count: blocks.count)
        try withCArguments(arguments) { keys, values, count in
            try callingPlugin(function.name) { error, size in
                info.withUnsafeBufferPointer { blockPointer in
                    out.withUnsafeMutableBufferPointer { outPointer in
                        function.call(function.context, keys, values, count, blockPointer.baseAddress, Int32(blocks.count), outPointer.baseAddress, error, size)
                    }
                }
            }
        }
        return out
    }
}

/// A plugin's metric functions.
struct MetricTable: @unchecked Sendable {
    let entry: dl_metric_v1
    let name: String
}

final class LoadedMetric: MetricAccumulator {
    let table: MetricTable
    let state: UnsafeMutableRawPointer
    let classes: Int

    init(table: MetricTable, arguments: [(key: String, value: String)], classes: Int) throws {
        self.table = table
        self.classes = classes
        var buffer = [CChar](repeating: 0, count: 1024)
        let created = withCArguments(arguments) { keys, values, count in
            buffer.withUnsafeMutableBufferPointer { table.entry.create!(table.entry.context, keys, values, count, Int32(classes), $0.baseAddress, $0.count) }
        }
        guard let created else {
            buffer[buffer.count - 1] = 0
            throw PluginError(spec: table.name, message: String(cString: buffer).isEmpty ? "create failed" : String(cString: buffer))
        }
        state = created
    }

    deinit { table.entry.destroy!(state) }

    func add(_ batch: PredictionBatch) {
        let logits = batch.memberLogits.flatMap { $0 }
        let labels = batch.labels.map { Int32($0) }
        // A failing add cannot throw through the accumulator protocol; it poisons the results instead.
        do {
            try callingPlugin(table.name) { error, size in
                logits.withUnsafeBufferPointer { l in
                    labels.withUnsafeBufferPointer { y in
                        if let reference = batch.referenceLogits {
                            return reference.withUnsafeBufferPointer { r in
                                table.entry.add!(state, l.baseAddress, Int32(batch.memberCount), y.baseAddress, Int32(batch.count),
                                                 Int32(classes), r.baseAddress, error, size)
                            }
                        }
                        return table.entry.add!(state, l.baseAddress, Int32(batch.memberCount), y.baseAddress, Int32(batch.count),
                                                Int32(classes), nil, error, size)
                    }
                }
            }
        } catch {
            failure = "\(error)"
        }
    }

    /// The first error an `add` reported, if any.
    private(set) var failure: String?

    func results() -> [MetricResult] {
        guard failure == nil else { return [MetricResult(table.name, .nan)] }
        let count = table.entry.result_count!(state)
        guard count >= 0, count <= SharedLibraryPlugins.maximumCount else {
            failure = "result_count returned \(count); a count must be between 0 and \(SharedLibraryPlugins.maximumCount)"
            return [MetricResult(table.name, .nan)]
        }
        return (0..<count).map { i in
            var name: UnsafePointer<CChar>?
            var value = Double.nan
            _ = table.entry.result!(state, i, &name, &value)
            return MetricResult(name.map { String(cString: $0) } ?? "\(table.name)_\(i)", value)
        }
    }
}
