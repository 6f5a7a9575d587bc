import CDepthLensPlugin
#if canImport(Glibc)
import Glibc
#endif

/// A metric instance with the C strings of its last results, kept alive for the host.
final class MetricBox {
    let metric: any PluginMetric
    var names: [UnsafeMutablePointer<CChar>] = []
    var values: [Double] = []

    init(_ metric: any PluginMetric) { self.metric = metric }

    func refresh() {
        names.forEach { free($0) }
        let results = metric.results()
        names = results.map { strdup($0.name) }
        values = results.map(\.value)
    }

    deinit { names.forEach { free($0) } }
}

func box(_ state: UnsafeMutableRawPointer?) -> MetricBox {
    Unmanaged<MetricBox>.fromOpaque(state!).takeUnretainedValue()
}

let metricCreate: @convention(c) (UnsafeRawPointer?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?,
                                  Int32, Int32, UnsafeMutablePointer<CChar>?, Int) -> UnsafeMutableRawPointer? = { context, keys, values, argc, classes, buffer, size in
    let type = DepthLensPlugin.metrics[slot(context)]
    do {
        let metric = try type.init(arguments: readArguments(keys, values, argc), classes: Int(classes))
        return Unmanaged.passRetained(MetricBox(metric)).toOpaque()
    } catch {
        _ = report(error, buffer, size)
        return nil
    }
}

let metricAdd: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<Float>?, Int32, UnsafePointer<Int32>?, Int32, Int32,
                               UnsafePointer<Float>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = { state, logits, members, labels, count, classes, reference, buffer, size in
    let perMember = Int(count) * Int(classes)
    let memberLogits = (0..<Int(members)).map { m in Array(UnsafeBufferPointer(start: logits! + m * perMember, count: perMember)) }
    let labelList = (0..<Int(count)).map { Int(labels![$0]) }
    let referenceLogits = reference.map { Array(UnsafeBufferPointer(start: $0, count: perMember)) }
    do {
        try box(state).metric.add(memberLogits: memberLogits, labels: labelList, reference: referenceLogits)
        return 0
    } catch {
        return report(error, buffer, size)
    }
}

let metricResultCount: @convention(c) (UnsafeMutableRawPointer?) -> Int32 = { state in
    let b = box(state)
    b.refresh()
    return Int32(b.values.count)
}

let metricResult: @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                  UnsafeMutablePointer<Double>?) -> Int32 = { state, index, name, value in
    let b = box(state)
    guard Int(index) < b.values.count else { return 1 }
    name?.pointee = UnsafePointer(b.names[Int(index)])
    value?.pointee = b.values[Int(index)]
    return 0
}

let metricDestroy: @convention(c) (UnsafeMutableRawPointer?) -> Void = { state in
    Unmanaged<MetricBox>.fromOpaque(state!).release()
}

/// The exported C entry points (`depthlens_plugin.h`).
@_cdecl("depthlens_plugin_abi_version")
public func depthlens_plugin_abi_version() -> UInt32 { DEPTHLENS_PLUGIN_ABI_VERSION }

@_cdecl("depthlens_plugin_schedule_count")
public func depthlens_plugin_schedule_count() -> Int32 { Int32(DepthLensPlugin.scheduleTable.count) }

@_cdecl("depthlens_plugin_schedule")
public func depthlens_plugin_schedule(_ index: Int32) -> UnsafePointer<dl_schedule_v1>? {
    guard index >= 0, Int(index) < DepthLensPlugin.scheduleTable.count else { return nil }
    return UnsafePointer(DepthLensPlugin.scheduleTable[Int(index)])
}

@_cdecl("depthlens_plugin_metric_count")
public func depthlens_plugin_metric_count() -> Int32 { Int32(DepthLensPlugin.metricTable.count) }

@_cdecl("depthlens_plugin_metric")
public func depthlens_plugin_metric(_ index: Int32) -> UnsafePointer<dl_metric_v1>? {
    guard index >= 0, Int(index) < DepthLensPlugin.metricTable.count else { return nil }
    return UnsafePointer(DepthLensPlugin.metricTable[Int(index)])
}
