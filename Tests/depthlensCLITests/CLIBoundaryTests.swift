import DepthLens
import Foundation
import XCTest

/// What the command line owns (issue 19, points 4 and 5): the engine variable, flag names
/// in messages, and that no setting is silently dropped.
final class CLIBoundaryTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    // MARK: DEPTHLENS_BACKEND

    func testAnUnknownEngineInTheEnvironmentIsRefused() throws {
        let result = try CLI.run(["eval", checkpoint, "--data", data, "--quiet"], environment: ["DEPTHLENS_BACKEND": "fastest"])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("DEPTHLENS_BACKEND: 'fastest' is not an engine; give reference or fast"), result.stderr)
        let help = try CLI.run(["--help"])
        XCTAssertTrue(help.stdout.contains("DEPTHLENS_BACKEND=reference"), help.stdout)
    }

    /// oneDNN logs each convolution it runs under ONEDNN_VERBOSE=1; the reference engine
    /// runs none. Reorder and recalibration evaluate networks of their own: they too must
    /// run on the engine the variable names.
    func testTheEngineVariableReachesReorderAndRecalibration() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let runs: [[String]] = [
            ["reorder", checkpoint, "--data", data, "--swaps", "1", "--trials", "1"],
            ["lesion", checkpoint, "--data", data, "--drop", "2", "--recalibrate", "16", "--recalibration-data", data],
        ]
        for (i, arguments) in runs.enumerated() {
            for backend in ["reference", "fast"] {
                let out = folder.appendingPathComponent("\(i)-\(backend)").path
                let result = try CLI.run(arguments + ["-o", out, "--quiet"],
                                         environment: ["DEPTHLENS_BACKEND": backend, "ONEDNN_VERBOSE": "1"])
                XCTAssertEqual(result.status, 0, result.stderr)
                let convolutions = result.stdout.split(separator: "\n").filter { $0.hasPrefix("onednn_verbose,exec,cpu,convolution,") }
                if backend == "reference" {
                    XCTAssertTrue(convolutions.isEmpty, "\(arguments[0]) ran oneDNN convolutions on the reference engine")
                } else {
                    XCTAssertFalse(convolutions.isEmpty, "\(arguments[0]): the fast engine logged no convolution; the check above proves nothing")
                }
            }
        }
    }

    // MARK: report

    func testReportComputesTheUsersMetricsAndPrintsEveryTableAsJSON() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["report", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--members", "2",
                                  "--trials", "1", "--max-k", "2", "--metric", "nll", "--metric", "aurc", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(Set(document.keys), ["lesion", "ensemble", "depth", "paths", "reorder", "gradient-paths"])
        for part in ["lesion", "ensemble", "depth", "reorder"] {
            let table = try XCTUnwrap(document[part] as? [String: Any], part)
            let entries = try XCTUnwrap(table["results"] as? [[String: Any]], part)
            XCTAssertFalse(entries.isEmpty, part)
            let names = Set(entries.flatMap { ($0["metrics"] as? [String: Any])?.keys.map { $0 } ?? [] })
            XCTAssertTrue(names.isSuperset(of: ["nll", "aurc", "eaurc"]), "\(part): \(names.sorted())")
            XCTAssertFalse(names.contains("accuracy"), "\(part) computed the default metrics instead of --metric: \(names.sorted())")
        }
        let paths = try XCTUnwrap((document["paths"] as? [String: Any])?["results"] as? [[String: Any]])
        XCTAssertFalse(paths.isEmpty)
        let csv = try String(contentsOfFile: folder.appendingPathComponent("lesion-results.csv").path, encoding: .utf8)
        XCTAssertTrue(csv.contains(",aurc,"), "the lesion CSV lacks the user's metric")
        XCTAssertFalse(csv.contains(",brier,"), "the lesion CSV has a default metric the user replaced")
    }

    func testAnAnalysisTableShowsEveryColumnOfTheUsersMetrics() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["lesion", checkpoint, "--data", data, "--drop", "2", "--metric", "aurc", "-o", folder.path, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let header = try XCTUnwrap(result.stdout.split(separator: "\n").first)
        XCTAssertTrue(header.contains("aurc") && header.contains("eaurc"), String(header))
    }

    // MARK: --gates with --drop

    func testDropAppliesAfterExplicitGatesAsTheHelpSays() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = ["predict", checkpoint, "--data", data, "--limit", "8"]
        let combined = folder.appendingPathComponent("combined.csv").path
        let explicit = folder.appendingPathComponent("explicit.csv").path
        XCTAssertEqual(try CLI.run(base + ["--gates", "1,0.5,1,1,1,1", "--drop", "3", "-o", combined]).status, 0)
        XCTAssertEqual(try CLI.run(base + ["--gates", "1,0.5,0,1,1,1", "-o", explicit]).status, 0)
        let plain = folder.appendingPathComponent("plain.csv").path
        XCTAssertEqual(try CLI.run(base + ["--gates", "1,0.5,1,1,1,1", "-o", plain]).status, 0)
        let combinedText = try String(contentsOfFile: combined, encoding: .utf8)
        XCTAssertEqual(combinedText, try String(contentsOfFile: explicit, encoding: .utf8))
        XCTAssertNotEqual(combinedText, try String(contentsOfFile: plain, encoding: .utf8), "--drop 3 changed nothing")
        let help = try CLI.run(["predict", "--help"])
        let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(words.contains("Applied last: with --rule or --gates, the gates of these blocks become 0"), help.stdout)
        let both = try CLI.run(base + ["--gates", "1,1,1,1,1,1", "--rule", "inverted", "-o", plain])
        XCTAssertEqual(both.status, 64)
    }

    // MARK: plugins

    func testPluginsListsTheResultNamesOfEachMetric() throws {
        let plugins = try CLI.run(["plugins"])
        XCTAssertEqual(plugins.status, 0, plugins.stderr)
        let lines = plugins.stdout.split(separator: "\n").map(String.init)
        func results(of metric: String) -> String? {
            guard let index = lines.firstIndex(where: { $0.hasPrefix("  \(metric) ") }), index + 1 < lines.count else { return nil }
            let next = lines[index + 1].trimmingCharacters(in: .whitespaces)
            return next.hasPrefix("results:") ? next : nil
        }
        for (metric, names) in [("accuracy", "accuracy"), ("calibration", "ece, mce, rmsce"), ("entropy", "predictive_entropy"),
                                ("uncertainty", "expected_entropy, mutual_information"),
                                ("diversity", "disagreement, variation_ratio, pairwise_kl"), ("aurc", "aurc, eaurc")] {
            let line = results(of: metric)
            XCTAssertTrue(line?.hasSuffix("\(names) (with the defaults)") == true, "\(metric): \(line ?? "no results line")")
        }
        XCTAssertTrue(plugins.stdout.contains("top{k}_accuracy otherwise"), plugins.stdout)
    }

    // MARK: errors name the flag

    func testErrorsOfFlagValuesNameTheFlag() throws {
        let out = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }
        let analysis = [checkpoint, "--data", data, "-o", out.path, "--quiet"]
        let cases: [(arguments: [String], status: Int32, message: String)] = [
            (["lesion"] + analysis + ["--drop", "2,9"], 1, "Error: --drop: block 9 does not exist; the network has blocks 1...6"),
            (["lesion"] + analysis + ["--prune-depth", "3", "--prune-rule", "random"], 1,
             "Error: --prune-rule: unknown prune rule 'random' (every-other, evenly-spaced, greedy)"),
            (["lesion"] + analysis + ["--prune-depth", "9"], 1, "Error: --prune-depth: prune depth 9 is outside 0...6"),
            (["lesion"] + analysis + ["--prune-depth", "1", "--prune-rule", "greedy", "--held-out", "10"], 1,
             "Error: --prune-depth: greedy pruning keeps the 2 downsampling blocks, so the depth must be in 2...6, found 1"),
            (["lesion"] + analysis + ["--prune-rule", "every-other"], 64, "Error: --prune-rule needs --prune-depth."),
            (["lesion"] + analysis + ["--held-out", "10"], 64, "Error: --held-out needs --prune-rule greedy."),
            (["depth"] + analysis + ["--depths", "0,9"], 1, "Error: --depths: depth 9 is outside 0...6"),
            (["sample"] + analysis + ["--offset", "100"], 1, "--offset 100 is beyond the 48 images"),
            (["sample"] + analysis + ["--resume"], 1, "nothing to resume: no progress file (the run finished, or never started); run without --resume"),
            (["predict", checkpoint, "--data", data, "--drop", "9", "-o", out.appendingPathComponent("p.csv").path], 1,
             "Error: --drop: block 9 does not exist; the network has blocks 1...6"),
            (["predict", checkpoint, "--data", data, "--gates", "1,1", "-o", out.appendingPathComponent("p.csv").path], 1,
             "Error: --gates: the gate vector has 2 entries but the network has 6 blocks"),
            (["inspect", CLI.fixture("interop/timm_resnet18.ckpt.h5"), "--arch", "timm/resnet18"], 1,
             "--arch: this is a DepthLens checkpoint, which records its own architecture; leave out --arch timm/resnet18"),
        ]
        for c in cases {
            let result = try CLI.run(c.arguments)
            XCTAssertEqual(result.status, c.status, "\(c.arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(c.message), "\(c.arguments): \(result.stderr)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".csv") }, [])
    }
}
