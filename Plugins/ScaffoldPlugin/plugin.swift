import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory scaffold-plugin --kind schedule|metric
/// --name NAME [--target TARGET] [--tests-target TESTS]`
///
/// Writes a working survival schedule or metric, and an XCTest file that checks it through
/// a `PluginRegistry`, into a target of the package it runs in. It never overwrites a file.
@main
struct ScaffoldPlugin: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        do {
            try scaffold(package: context.package, arguments: arguments)
        } catch let error as ScaffoldError {
            Diagnostics.error("scaffold-plugin: \(error.message)")
        }
    }

    static let usage = """
        usage: swift package --allow-writing-to-package-directory scaffold-plugin \
        --kind schedule|metric --name NAME [--target TARGET] [--tests-target TESTS]

          --kind          schedule (a SurvivalSchedule) or metric (a MetricAccumulator)
          --name          the name users write in specs: lowercase letters, digits, '-' and '_',
                          starting with a letter (such as my-schedule)
          --target        the source target to write into (default: a regular target that
                          depends on DepthLens, preferring one whose name contains
                          Schedule or Metric, as --kind says, then the first by name)
          --tests-target  the test target for the test file (default: TARGETTests, if it exists)
        """

    func scaffold(package: Package, arguments: [String]) throws {
        var extractor = ArgumentExtractor(arguments)
        if extractor.extractFlag(named: "help") > 0 {
            print(Self.usage)
            return
        }
        let kindValue = try single(extractor.extractOption(named: "kind"), "--kind")
        let nameValue = try single(extractor.extractOption(named: "name"), "--name")
        let targetValue = try optional(extractor.extractOption(named: "target"), "--target")
        let testsValue = try optional(extractor.extractOption(named: "tests-target"), "--tests-target")
        guard extractor.remainingArguments.isEmpty else {
            throw ScaffoldError("unexpected argument '\(extractor.remainingArguments[0])'\n\(Self.usage)")
        }
        guard let kind = Kind(rawValue: kindValue) else {
            throw ScaffoldError("--kind must be schedule or metric, found '\(kindValue)'")
        }
        let name = try validatedName(nameValue)

        let target = try sourceTarget(named: targetValue, kind: kind, in: package)
        let tests = try testsTarget(named: testsValue, for: target, in: package)
        let typeName = Self.typeName(for: name, kind: kind)
        let module = target.moduleName

        let source = try directory(of: target).appendingPathComponent("\(typeName).swift")
        let test = try tests.map { try directory(of: $0).appendingPathComponent("\(typeName)Tests.swift") }
        // Check both before writing either, so a refusal leaves nothing half done.
        for url in [source] + (test.map { [$0] } ?? []) where FileManager.default.fileExists(atPath: url.path) {
            throw ScaffoldError("\(url.path) already exists; not overwriting it (choose another --name or remove the file)")
        }
        let sourceText = kind == .schedule ? Templates.schedule(name: name, type: typeName, module: module)
            : Templates.metric(name: name, type: typeName, module: module)
        try write(sourceText, to: source)
        if let test {
            let testText = kind == .schedule ? Templates.scheduleTest(name: name, type: typeName, module: module)
                : Templates.metricTest(name: name, type: typeName, module: module)
            try write(testText, to: test)
        }

        // The package's own depthlens-style executable, to suggest a command to try.
        let tool = package.products.compactMap { $0 as? ExecutableProduct }.map(\.name).sorted().first ?? "depthlens"
        print("Wrote \(relative(source, to: package))  (\(kind.rawValue) '\(name)', type \(typeName), target \(target.name))")
        if let test, let tests {
            print("Wrote \(relative(test, to: package))  (target \(tests.name))")
        } else {
            Diagnostics.warning("no test target \(target.name)Tests; wrote no test (pass --tests-target to choose one)")
        }
        print("""

            Register it where your executable registers its plugins, for example in main.swift:

                DepthLensMain.run { registry in
                    registry.register(\(typeName).descriptor)
                }

            then try it: \(kind == .schedule ? "swift run \(tool) schedule \(name) --checkpoint CKPT.h5" : "swift run \(tool) plugins")
            """)
    }

    enum Kind: String {
        case schedule, metric
    }

    func single(_ values: [String], _ option: String) throws -> String {
        guard let value = try optional(values, option) else { throw ScaffoldError("\(option) is required\n\(Self.usage)") }
        return value
    }

    func optional(_ values: [String], _ option: String) throws -> String? {
        guard values.count <= 1 else { throw ScaffoldError("\(option) is given \(values.count) times") }
        return values.first
    }

    /// A name users can write in a spec and that makes a Swift type name.
    func validatedName(_ name: String) throws -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-_")
        guard let first = name.first, first.isASCII, first.isLetter, first.isLowercase, name.allSatisfy(allowed.contains) else {
            throw ScaffoldError("--name must be lowercase letters, digits, '-' and '_', starting with a letter (such as my-schedule), found '\(name)'")
        }
        return name
    }

    /// `my-schedule` -> `MySchedule`; `top_error` (metric) -> `TopErrorMetric`.
    static func typeName(for name: String, kind: Kind) -> String {
        let camel = name.split(whereSeparator: { $0 == "-" || $0 == "_" })
            .map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        let suffix = kind == .schedule ? "Schedule" : "Metric"
        return camel.hasSuffix(suffix) ? camel : camel + suffix
    }

    /// Whether `target` depends directly on the DepthLens library (its target, from inside
    /// the DepthLens package, or its product, from a package that depends on DepthLens).
    func dependsOnDepthLens(_ target: any Target) -> Bool {
        target.dependencies.contains { dependency in
            switch dependency {
            case .target(let other): return other.name == "DepthLens"
            case .product(let product): return product.name == "DepthLens"
            @unknown default: return false
            }
        }
    }

    func sourceTarget(named name: String?, kind: Kind, in package: Package) throws -> any SourceModuleTarget {
        let modules = package.targets.compactMap { $0 as? any SourceModuleTarget }
        if let name {
            guard let target = package.targets.first(where: { $0.name == name }) else {
                throw ScaffoldError("no target named '\(name)' (targets: \(package.targets.map(\.name).sorted().joined(separator: ", ")))")
            }
            guard let module = target as? any SourceModuleTarget, module.kind != .test, module is SwiftSourceModuleTarget else {
                throw ScaffoldError("'\(name)' is not a Swift source target (it must hold the plugin's code, not its tests)")
            }
            return module
        }
        // package.targets has no set order: sort, so the default is the same on every run.
        let candidates = modules.filter { $0.kind == .generic && $0.name != "DepthLens" && $0 is SwiftSourceModuleTarget && dependsOnDepthLens($0) }
            .sorted { $0.name < $1.name }
        let word = kind == .schedule ? "schedule" : "metric"
        guard let found = candidates.first(where: { $0.name.lowercased().contains(word) }) ?? candidates.first else {
            throw ScaffoldError("no regular Swift target of \(package.displayName) depends on DepthLens; add one "
                + "(dependencies: [.product(name: \"DepthLens\", package: \"DepthLens\")]) or pass --target")
        }
        return found
    }

    func testsTarget(named name: String?, for target: any SourceModuleTarget, in package: Package) throws -> (any SourceModuleTarget)? {
        let wanted = name ?? target.name + "Tests"
        let found = package.targets.first { $0.name == wanted }
        guard let found else {
            if name == nil { return nil }
            throw ScaffoldError("no target named '\(wanted)'")
        }
        guard let module = found as? any SourceModuleTarget, module.kind == .test, module is SwiftSourceModuleTarget else {
            throw ScaffoldError("'\(wanted)' is not a Swift test target")
        }
        return module
    }

    /// A target's folder. `directoryURL` needs tools version 6.1 and this package declares
    /// 6.0, where `directory` is the API (deprecated, hence reached through ``HasFolder``).
    func directory(of target: any Target) throws -> URL {
        guard let folder = (target as? any HasFolder)?.directory else {
            throw ScaffoldError("cannot find the folder of target '\(target.name)'")
        }
        return URL(fileURLWithPath: String(describing: folder), isDirectory: true)
    }

    func write(_ text: String, to url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: url.path, contents: Data(text.utf8)) else {
                throw ScaffoldError("cannot write \(url.path)")
            }
        } catch let error as ScaffoldError {
            throw error
        } catch {
            throw ScaffoldError("cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    func relative(_ url: URL, to package: Package) -> String {
        let root = URL(fileURLWithPath: String(describing: (package as any HasFolder).directory)).standardizedFileURL.path
        let path = url.standardizedFileURL.path
        return path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }
}

/// The folder of a package or target, as tools version 6.0 gives it.
protocol HasFolder {
    var directory: Path { get }
}

extension Package: HasFolder {}
extension SwiftSourceModuleTarget: HasFolder {}
extension ClangSourceModuleTarget: HasFolder {}
extension BinaryArtifactTarget: HasFolder {}
extension SystemLibraryTarget: HasFolder {}

struct ScaffoldError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// The files the plugin writes. Each compiles and passes its test as written; the formula
/// is the part to replace.
enum Templates {
    static func schedule(name: String, type: String, module: String) -> String {
        """
        import DepthLens
        import Foundation

        /// `\(name)`: p_l = 1 - (l/L)(1 - pL) for blocks l = 1...L, a linear decay to pL.
        /// Replace the formula in `survivalProbabilities(for:)` with your own (and its test).
        ///
        /// The core validates what this returns (one value per block, each in [0, 1]) and
        /// adds the options every schedule takes (`only=identity`, `per_stage=true`).
        public struct \(type): SurvivalSchedule {
            public let pL: Double

            public init(pL: Double) { self.pL = pL }

            /// Register with `registry.register(\(type).descriptor)`.
            public static let descriptor = ScheduleDescriptor(
                name: "\(name)", summary: "p_l = 1 - (l/L)(1 - pL), a linear decay to pL",
                parameters: [PluginParameter("pL", .number, default: "0.5", help: "survival probability of the last block")],
                origin: .linked("\(module)")
            ) { arguments in \(type)(pL: try arguments.number("pL", in: 0...1)) }

            /// p_l for each block; `blocks` is numbered 1...count (the network, or one stage).
            public func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
                let count = Double(blocks.count)
                return blocks.map { 1 - Double($0.index) / count * (1 - pL) }
            }
        }

        """
    }

    static func scheduleTest(name: String, type: String, module: String) -> String {
        """
        import DepthLens
        import \(module)
        import XCTest

        /// `\(name)` through a registry, as the command line uses it.
        final class \(type)Tests: XCTestCase {
            let registry: PluginRegistry = {
                let registry = PluginRegistry()
                registry.register(\(type).descriptor)
                return registry
            }()

            /// Two stages of three blocks; block 4 downsamples.
            let architecture = Architecture(inChannels: 1, numClasses: 2, stemWidth: 4,
                                            stages: [.init(blocks: 3, width: 4, stride: 1), .init(blocks: 3, width: 8, stride: 2)])

            func testFollowsTheFormula() throws {
                let p = try registry.survivalProbabilities("\(name):pL=0.4", for: architecture)
                let expected = (1...6).map { 1 - Double($0) / 6 * 0.6 }
                XCTAssertEqual(p.count, 6)
                for (l, (a, b)) in zip(p, expected).enumerated() { XCTAssertEqual(a, b, accuracy: 1e-12, "block \\(l + 1)") }
                XCTAssertEqual(p.last!, 0.4, accuracy: 1e-12)
            }

            func testDefaultsAndGenericOptions() throws {
                XCTAssertEqual(try registry.survivalProbabilities("\(name)", for: architecture).last!, 0.5, accuracy: 1e-12)
                let identity = try registry.survivalProbabilities("\(name):only=identity", for: architecture)
                XCTAssertEqual(identity[3], 1, "block 4 downsamples")
                let perStage = try registry.survivalProbabilities("\(name):per_stage=true", for: architecture)
                XCTAssertEqual(perStage[2], perStage[5], accuracy: 1e-12, "each stage ends at pL")
            }

            func testBadArgumentsAreRejected() {
                for (spec, words) in [("\(name):pL=2", "'pL' must be in [0, 1]"), ("\(name):nope=1", "unknown parameter 'nope'")] {
                    XCTAssertThrowsError(try registry.survivalProbabilities(spec, for: architecture)) {
                        XCTAssertTrue("\\($0)".contains(words), "\\($0)")
                    }
                }
            }
        }

        """
    }

    static func metric(name: String, type: String, module: String) -> String {
        """
        import DepthLens
        import Foundation

        /// `\(name)`: the mean over examples of the probability the predictive distribution
        /// gives the label. Replace `add(_:)` and `results()` with your own (and its test).
        ///
        /// A member-scope metric reads the batch's ensemble mean (`meanProbabilities`), which
        /// for a one-member batch is that member; analyses apply it to each member and to the
        /// ensemble. A metric of the members jointly has scope `.ensemble` and reads
        /// `memberLogits` or `logProbabilities(member:)`. Keep memory independent of the
        /// number of examples: sums and a count, not lists.
        public final class \(type): MetricAccumulator {
            private let classes: Int
            private var sum = 0.0
            private var count = 0

            public init(classes: Int) { self.classes = classes }

            /// Register with `registry.register(\(type).descriptor)`.
            public static let descriptor = MetricDescriptor(
                name: "\(name)", summary: "mean probability of the label under the predictive distribution",
                scope: .member,
                // Declare parameters here, such as PluginParameter("k", .integer, default: "1", help: "..."),
                // and read them in the closure with arguments.integer("k", atLeast: 1).
                parameters: [],
                origin: .linked("\(module)")
            ) { _, classes in \(type)(classes: classes) }

            public func add(_ batch: PredictionBatch) {
                precondition(batch.classes == classes, "\(name): made for \\(classes) classes, given \\(batch.classes)")
                let p = batch.meanProbabilities
                for (i, label) in batch.labels.enumerated() { sum += p[i * classes + label] }
                count += batch.count
            }

            public func results() -> [MetricResult] {
                [MetricResult("\(name)", count == 0 ? .nan : sum / Double(count))]
            }
        }

        """
    }

    static func metricTest(name: String, type: String, module: String) -> String {
        """
        import DepthLens
        import Foundation
        import \(module)
        import XCTest

        /// `\(name)` through a registry, as the command line uses it.
        final class \(type)Tests: XCTestCase {
            func testMeanLabelProbabilityStreamedInBatches() throws {
                let registry = PluginRegistry()
                registry.register(\(type).descriptor)
                let (descriptor, metric) = try registry.makeMetric("\(name)", classes: 2)
                XCTAssertEqual(descriptor.scope, .member)
                XCTAssertTrue(metric.results()[0].value.isNaN, "NaN before any example")
                // Two members; example 1: logits (0, 0) for both, p(label) = 1/2. Example 2:
                // logits (2, 0) and (1, 0), label 0, p = mean of sigmoid(2) and sigmoid(1).
                metric.add(PredictionBatch(classes: 2, labels: [1], memberLogits: [[0, 0], [0, 0]]))
                metric.add(PredictionBatch(classes: 2, labels: [0], memberLogits: [[2, 0], [1, 0]]))
                let second = (1 / (1 + exp(-2.0)) + 1 / (1 + exp(-1.0))) / 2
                XCTAssertEqual(metric.results().map(\\.name), ["\(name)"])
                XCTAssertEqual(metric.results()[0].value, (0.5 + second) / 2, accuracy: 1e-12)
            }

            func testUnknownArgumentsAreRejected() {
                let registry = PluginRegistry()
                registry.register(\(type).descriptor)
                XCTAssertThrowsError(try registry.makeMetric("\(name):nope=1", classes: 2)) {
                    XCTAssertTrue("\\($0)".contains("unknown parameter 'nope'"), "\\($0)")
                }
            }
        }

        """
    }
}
