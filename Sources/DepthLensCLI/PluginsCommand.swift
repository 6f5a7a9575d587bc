import ArgumentParser
import DepthLens
import Foundation

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List every survival schedule and metric, with parameters, defaults and origin.")

    @OptionGroup var plugins: PluginOptions

    func run() throws {
        try plugins.load()
        print(pluginCatalogue(PluginRegistry.shared), terminator: "")
    }
}

/// The text `depthlens plugins` prints, also used in `--help` of `--schedule`.
/// Every schedule as a paragraph, for `--help` (which rewraps lines but keeps paragraphs).
func scheduleHelp(_ registry: PluginRegistry) -> String {
    func parameters(_ list: [PluginParameter]) -> String {
        list.map { "\($0.synopsis): \($0.help)" }.joined(separator: "; ")
    }
    let entries = registry.schedules.map { s in
        "\(s.name) [\(s.origin)]: \(s.summary)." + (s.parameters.isEmpty ? "" : " Parameters: " + parameters(s.parameters) + ".")
    }
    return "Schedules:\n\n" + entries.joined(separator: "\n\n")
        + "\n\nEvery schedule also takes " + parameters(ScheduleOptions.parameters) + "."
}

func pluginCatalogue(_ registry: PluginRegistry, metrics: Bool = true) -> String {
    func parameters(_ list: [PluginParameter]) -> String {
        list.map { "      \(pad($0.synopsis, 38))\($0.help)\n" }.joined()
    }
    var out = "Schedules (--schedule NAME or NAME:key=value,...)\n"
    for s in registry.schedules {
        out += "  \(pad(s.name, 22))\(s.summary) [\(s.origin)]\n" + parameters(s.parameters)
    }
    out += "  Every schedule also takes:\n" + parameters(ScheduleOptions.parameters)
    guard metrics else { return out }
    out += "\nMetrics (--metric NAME or NAME:key=value,...; results: the metric column names it gives in the CSVs)\n"
    for m in registry.metrics {
        out += "  \(pad(m.name, 22))\(m.summary) [\(m.scope.rawValue); \(m.origin)]\n"
        out += "      \(pad("results:", 38))\(metricResultNames(m.name, registry).map { $0.joined(separator: ", ") + " (with the defaults)" } ?? "named by the parameters")\n"
        out += parameters(m.parameters)
    }
    return out
}

/// The result names a metric gives with its default arguments (for 10 classes), as the
/// accumulator reports them before any example; nil when it needs arguments.
func metricResultNames(_ name: String, _ registry: PluginRegistry) -> [String]? {
    guard let made = try? registry.makeMetric(name, classes: 10) else { return nil }
    return made.accumulator.results().map(\.name)
}

struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Print the survival probability p_l of every block under a schedule, and the expected number of active blocks.",
        // Built when help is first shown, after every plugin has registered.
        discussion: scheduleHelp(PluginRegistry.shared))

    @Argument(help: ArgumentHelp("A schedule: NAME or NAME:key=value,... such as linear:pL=0.5 or custom:file=probs.csv.", valueName: "name-or-spec"))
    var spec: String

    @Option(help: "The checkpoint whose blocks the schedule is applied to.")
    var checkpoint: String

    @OptionGroup var architecture: ArchitectureOption

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var plugins: PluginOptions

    func run() throws {
        try plugins.load()
        let ckpt = try architecture.load(checkpoint)
        let p = try PluginRegistry.shared.survivalProbabilities(spec, for: ckpt.architecture)
        let blocks = ckpt.architecture.blocks
        let expected = p.reduce(0, +)
        let variance = p.reduce(0) { $0 + $1 * (1 - $1) }
        if json {
            let rows = zip(blocks, p).map { block, value in
                "{\"block\": \(block.index), \"stage\": \(block.stage), \"shortcut\": \"\(block.shortcut.rawValue)\", \"p\": \(value)}"
            }
            print("{\"schedule\": \(jsonString(spec)), \"checkpoint\": \(jsonString(ckpt.path)), \"expected_active_blocks\": \(expected), "
                + "\"variance_active_blocks\": \(variance), \"blocks\": [\n  " + rows.joined(separator: ",\n  ") + "\n]}")
            return
        }
        print("Schedule    \(spec)")
        print("Checkpoint  \(ckpt.path) (\(blocks.count) blocks)")
        print("")
        // ConvNeXt's keys (stages.3.blocks.11) are wider than the ResNets' (layer3.11).
        let keyWidth = max(14, (blocks.map(\.keyPrefix.count).max() ?? 0) + 1)
        print(pad("block", 7) + pad("stage", 7) + pad("key", keyWidth) + pad("shortcut", 10) + "p_l")
        for (block, value) in zip(blocks, p) {
            print(pad("\(block.index)", 7) + pad("\(block.stage)", 7) + pad(String(block.keyPrefix.dropLast()), keyWidth)
                + pad(block.shortcut.rawValue, 10) + String(format: "%.6f", value))
        }
        print("")
        print(String(format: "Expected number of active blocks: %.4f of %d (standard deviation %.4f)",
                     expected, blocks.count, variance.squareRoot()))
    }
}

/// `text` as a JSON string literal, quotes and backslashes escaped (a spec or a path may
/// hold them).
func jsonString(_ text: String) -> String {
    let data = try? JSONSerialization.data(withJSONObject: [text], options: .withoutEscapingSlashes)
    return data.map { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) } ?? "\"\""
}

/// `--plugin` shared libraries to load before anything else.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"), help: ArgumentHelp("A shared library of schedules and metrics (C ABI, see docs/plugins.md); repeatable.", valueName: "lib.so"))
    var libraries: [String] = []

    func load() throws {
        for path in libraries {
            try SharedLibraryPlugins.load(path, into: .shared)
        }
    }
}
