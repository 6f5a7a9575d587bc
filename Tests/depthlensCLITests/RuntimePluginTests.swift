import DepthLens
import Foundation
import XCTest

/// Plugins loaded at run time through the C ABI: the Swift example plugin
/// (Plugins/Examples/SchedulePlugin, built here with swiftc against DepthLensPluginKit) and
/// small C libraries that break the contract in each way a plugin can.
final class RuntimePluginTests: XCTestCase {
    static let folder = CLI.temporaryDirectory()
    nonisolated(unsafe) static var built: String?

    override class func tearDown() { try? FileManager.default.removeItem(at: folder) }

    /// A toolchain program next to `swiftc` on the PATH.
    static func tool(_ name: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let swiftc = "\(dir)/swiftc"
            if FileManager.default.isExecutableFile(atPath: swiftc) { return "\(dir)/\(name)" }
        }
        throw XCTSkip("no swiftc on the PATH")
    }

    static func run(_ program: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.currentDirectoryURL = CLI.packageRoot
        let err = Pipe()
        process.standardError = err
        process.standardOutput = err
        try process.run()
        let output = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(program) \(arguments.joined(separator: " ")):\n\(output)")
    }

    /// Builds Plugins/Examples/SchedulePlugin as a user would get it: PluginKit as a module, the
    /// plugin as a shared library linking it.
    static func examplePlugin() throws -> String {
        if let built { return built }
        let swiftc = try tool("swiftc")
        let root = CLI.packageRoot.path
        let include = "\(root)/Sources/CDepthLensPlugin/include"
        let kitSources = try FileManager.default.contentsOfDirectory(atPath: "\(root)/Sources/DepthLensPluginKit")
            .filter { $0.hasSuffix(".swift") }.map { "\(root)/Sources/DepthLensPluginKit/\($0)" }
        let dir = folder.path
        try run(swiftc, ["-parse-as-library", "-wmo", "-module-name", "DepthLensPluginKit", "-I", include, "-emit-module",
                         "-emit-module-path", "\(dir)/DepthLensPluginKit.swiftmodule", "-c"] + kitSources + ["-o", "\(dir)/kit.o"])
        let library = "\(dir)/libCosineSchedule.so"
        try run(swiftc, ["-parse-as-library", "-emit-library", "-module-name", "CosineSchedule", "-I", dir, "-I", include,
                         "\(root)/Plugins/Examples/SchedulePlugin/Sources/CosineSchedule/CosineSchedule.swift", "\(dir)/kit.o", "-o", library])
        built = library
        return library
    }

    /// Compiles a C plugin from source.
    func cPlugin(_ name: String, _ source: String) throws -> String {
        let clang = try Self.tool("clang")
        let file = Self.folder.appendingPathComponent("\(name).c").path
        try source.write(toFile: file, atomically: true, encoding: .utf8)
        let library = Self.folder.appendingPathComponent("lib\(name).so").path
        try Self.run(clang, ["-shared", "-fPIC", "-I", CLI.packageRoot.path + "/Sources/CDepthLensPlugin/include", file, "-o", library])
        return library
    }

    func testSwiftExamplePluginAddsAScheduleAndAMetric() throws {
        let library = try Self.examplePlugin()
        let registry = PluginRegistry()
        XCTAssertEqual(try SharedLibraryPlugins.load(library, into: registry), ["cosine", "mean_confidence"])
        XCTAssertEqual(try registry.schedule(named: "cosine").origin, .loaded(path: library))
        let architecture = try Checkpoint.load(from: CLI.fixture("golden/official.ckpt.h5")).architecture
        let p = try registry.survivalProbabilities("cosine:pL=0.25", for: architecture)
        let expected = (1...6).map { 0.25 + 0.75 * (1 + cos(Double.pi * Double($0) / 6)) / 2 }
        XCTAssertEqual(p.count, 6)
        for (a, b) in zip(p, expected) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        XCTAssertEqual(p.last!, 0.25, accuracy: 1e-12)
        // Generic options apply to loaded schedules too.
        let identityOnly = try registry.survivalProbabilities("cosine:pL=0.25,only=identity", for: architecture)
        XCTAssertEqual(identityOnly[2], 1, "block 3 downsamples")
        XCTAssertThrowsError(try registry.survivalProbabilities("cosine:pL=2", for: architecture)) {
            XCTAssertTrue("\($0)".contains("pL must be a number in [0, 1], found '2'"), "\($0)")
        }
        XCTAssertThrowsError(try registry.survivalProbabilities("cosine:q=2", for: architecture)) {
            XCTAssertTrue("\($0)".contains("unknown parameter 'q'"), "\($0)")
        }
        let (_, metric) = try registry.makeMetric("mean_confidence", classes: 2)
        metric.add(PredictionBatch(classes: 2, labels: [0, 1], memberLogits: [[0, 0, 2, 0], [0, 0, 1, 0]]))
        // Example 1 is a coin flip for both members; example 2 averages sigmoid(2) and sigmoid(1).
        let second = (1 / (1 + exp(-2.0)) + 1 / (1 + exp(-1.0))) / 2
        XCTAssertEqual(metric.results().first?.name, "mean_confidence")
        XCTAssertEqual(metric.results().first!.value, (0.5 + second) / 2, accuracy: 1e-6)
    }

    func testCommandLineLoadsThePluginAndListsItsOrigin() throws {
        let library = try Self.examplePlugin()
        let schedule = try CLI.run(["schedule", "cosine:pL=0.5", "--checkpoint", CLI.fixture("golden/official.ckpt.h5"), "--plugin", library])
        XCTAssertEqual(schedule.status, 0, schedule.stderr)
        XCTAssertTrue(schedule.stdout.contains("6      3      layer3.1      identity  0.500000"), schedule.stdout)
        let plugins = try CLI.run(["plugins", "--plugin", library])
        XCTAssertTrue(plugins.stdout.contains("cosine"), plugins.stdout)
        XCTAssertTrue(plugins.stdout.contains("loaded from \(library)"), plugins.stdout)
        XCTAssertTrue(plugins.stdout.contains("pL=<number> (default 0.5)"), plugins.stdout)
    }

    static let header = "#include \"depthlens_plugin.h\"\n"

    func testBadPluginsGetClearErrors() throws {
        let registry = PluginRegistry()
        func assertLoadError(_ library: String, _ words: [String], line: UInt = #line) {
            XCTAssertThrowsError(try SharedLibraryPlugins.load(library, into: registry), line: line) { error in
                for word in words { XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", line: line) }
            }
        }
        assertLoadError("/nonexistent/libX.so", ["no such file"])
        let notALibrary = Self.folder.appendingPathComponent("text.so").path
        try "not a library".write(toFile: notALibrary, atomically: true, encoding: .utf8)
        assertLoadError(notALibrary, [notALibrary, "cannot load"])
        assertLoadError(try cPlugin("nosymbol", "int unrelated(void) { return 1; }\n"),
                        ["does not export depthlens_plugin_abi_version"])
        assertLoadError(try cPlugin("version99", Self.header + "uint32_t depthlens_plugin_abi_version(void) { return 99; }\n"),
                        ["built for plugin ABI version 99", "speaks version 1"])
        assertLoadError(try cPlugin("empty", Self.header + "uint32_t depthlens_plugin_abi_version(void) { return 1; }\n"),
                        ["exports no schedules and no metrics"])
    }

    /// Every count and enumeration crossing the C ABI is checked (issue 23): a negative or
    /// absurd count is an error naming the function, not a trap.
    func testNegativeOrAbsurdCountsFromAPluginAreRefused() throws {
        let registry = PluginRegistry()
        func assertLoadError(_ name: String, _ body: String, _ words: [String], line: UInt = #line) throws {
            let library = try cPlugin(name, Self.header + "uint32_t depthlens_plugin_abi_version(void) { return 1; }\n" + body)
            XCTAssertThrowsError(try SharedLibraryPlugins.load(library, into: registry), line: line) { error in
                for word in [library] + words { XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", line: line) }
            }
        }
        let schedule = """
            static int32_t fill(const void *c, const char *const *k, const char *const *v, int32_t n,
                                const dl_block_info *b, int32_t count, double *out, char *e, size_t s) { return 0; }
            static const dl_schedule_v1 s = {"neg", "", -4, 0, 0, fill};
            const dl_schedule_v1 *depthlens_plugin_schedule(int32_t i) { return &s; }

            """
        try assertLoadError("negative-schedules", schedule + "int32_t depthlens_plugin_schedule_count(void) { return -1; }\n",
                            ["depthlens_plugin_schedule_count() is -1; a count must be between 0 and 10000"])
        try assertLoadError("absurd-schedules", schedule + "int32_t depthlens_plugin_schedule_count(void) { return 2147483647; }\n",
                            ["depthlens_plugin_schedule_count() is 2147483647"])
        try assertLoadError("negative-parameters", schedule + "int32_t depthlens_plugin_schedule_count(void) { return 1; }\n",
                            ["schedule 'neg': parameter_count is -4"])
        let metric = """
            static void *create(const void *c, const char *const *k, const char *const *v, int32_t n, int32_t classes,
                                char *e, size_t s) { static int x; return &x; }
            static int32_t add(void *st, const float *l, int32_t m, const int32_t *y, int32_t n, int32_t c,
                               const float *r, char *e, size_t s) { return 0; }
            static int32_t rcount(void *st) { return -2; }
            static int32_t result(void *st, int32_t i, const char **name, double *value) { return 0; }
            static void destroy(void *st) {}
            static const dl_metric_v1 m[2] = {{"negresults", "", 0, 0, 0, 0, create, add, rcount, result, destroy},
                                               {"badscope", "", 7, 0, 0, 0, create, add, rcount, result, destroy}};
            const dl_metric_v1 *depthlens_plugin_metric(int32_t i) { return &m[i]; }

            """
        try assertLoadError("negative-metrics", metric + "int32_t depthlens_plugin_metric_count(void) { return -3; }\n",
                            ["depthlens_plugin_metric_count() is -3"])
        try assertLoadError("bad-scope", metric + "int32_t depthlens_plugin_metric_count(void) { return 2; }\n",
                            ["metric 'badscope' has scope 7; it must be 0 (member) or 1 (ensemble)"])
        // A negative result count is known only once results are asked for: a failure, not a trap.
        let library = try cPlugin("negative-results", Self.header + "uint32_t depthlens_plugin_abi_version(void) { return 1; }\n"
                                  + metric + "int32_t depthlens_plugin_metric_count(void) { return 1; }\n")
        XCTAssertEqual(try SharedLibraryPlugins.load(library, into: registry), ["negresults"])
        let accumulator = try registry.makeMetric("negresults", classes: 2).accumulator
        accumulator.add(PredictionBatch(classes: 2, labels: [0], memberLogits: [[0, 1]]))
        XCTAssertTrue(accumulator.results().allSatisfy { $0.value.isNaN })
        XCTAssertEqual(accumulator.failure, "result_count returned -2; a count must be between 0 and 10000")
    }

    func testSchedulesReturningNaNOrOutOfRangeOrFailingAreCaught() throws {
        let source = Self.header + """
            #include <math.h>
            #include <stdio.h>
            uint32_t depthlens_plugin_abi_version(void) { return DEPTHLENS_PLUGIN_ABI_VERSION; }
            static int32_t fill(const void *ctx, const char *const *k, const char *const *v, int32_t n,
                                const dl_block_info *b, int32_t count, double *out, char *err, size_t size) {
                long mode = (long)ctx;
                if (mode == 3) { snprintf(err, size, "the moon is in the wrong phase"); return 2; }
                for (int32_t i = 0; i < count; i++) out[i] = 0.5;
                if (mode == 1) out[count - 1] = NAN;
                if (mode == 2) out[0] = 1.5;
                return 0;
            }
            static const dl_schedule_v1 s[3] = {
                {"nan", "returns NaN", 0, 0, (const void *)1, fill},
                {"big", "returns 1.5", 0, 0, (const void *)2, fill},
                {"fails", "reports an error", 0, 0, (const void *)3, fill},
            };
            int32_t depthlens_plugin_schedule_count(void) { return 3; }
            const dl_schedule_v1 *depthlens_plugin_schedule(int32_t i) { return &s[i]; }
            """
        let library = try cPlugin("liars", source)
        let registry = PluginRegistry()
        XCTAssertEqual(try SharedLibraryPlugins.load(library, into: registry), ["nan", "big", "fails"])
        let architecture = try Checkpoint.load(from: CLI.fixture("golden/official.ckpt.h5")).architecture
        for (spec, words) in [("nan", ["block 6", "nan", "outside [0, 1]"]), ("big", ["block 1", "1.5", "outside [0, 1]"]),
                              ("fails", ["'fails': the moon is in the wrong phase"])] {
            XCTAssertThrowsError(try registry.survivalProbabilities(spec, for: architecture)) { error in
                for word in words { XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'") }
            }
        }
        let cli = try CLI.run(["schedule", "nan", "--checkpoint", CLI.fixture("golden/official.ckpt.h5"), "--plugin", library])
        XCTAssertEqual(cli.status, 1)
        XCTAssertTrue(cli.stderr.contains("survival probability nan, outside [0, 1]"), cli.stderr)
    }
}
