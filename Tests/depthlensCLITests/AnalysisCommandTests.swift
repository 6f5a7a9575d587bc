import DepthLens
import Foundation
import XCTest

/// The plugin listing and the analysis subcommands, run as the built executable.
final class AnalysisCommandTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    func testPluginsAndScheduleHelpListEveryScheduleWithParametersAndDefaults() throws {
        let plugins = try CLI.run(["plugins"])
        XCTAssertEqual(plugins.status, 0, plugins.stderr)
        for name in ["constant", "linear", "linear-from-zero", "linear-efficientnet", "custom",
                     "accuracy", "nll", "gibbs_nll", "brier", "calibration", "diversity", "aurc"] {
            XCTAssertTrue(plugins.stdout.contains("  \(name) "), "plugins lacks \(name)")
        }
        XCTAssertTrue(plugins.stdout.contains("[built in]"))
        let help = try CLI.run(["schedule", "--help"])
        XCTAssertTrue(help.stdout.contains("linear [built in]"), help.stdout)
        XCTAssertTrue(help.stdout.contains("pL=<number> (default 0.5)"), help.stdout)
        let bad = try CLI.run(["schedule", "linear:pL=2", "--checkpoint", checkpoint])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("'pL' must be in [0, 1], found 2.0"), bad.stderr)
    }

    func testEachAnalysisWritesItsCSVMasksAndPlots() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let runs: [(arguments: [String], files: [String])] = [
            (["lesion", "--single", "--random-k", "2", "--trials", "2", "--prune-depth", "3"],
             ["lesion-results.csv", "lesion-masks.csv", "lesion-single-block.svg", "lesion-k-blocks.svg", "lesion-prune.svg"]),
            (["ensemble", "--members", "3", "--granularity", "sample"], ["ensemble-results.csv", "ensemble-accuracy.svg"]),
            (["sample", "--members", "3"], ["sample-results.csv", "sample-masks.csv", "sample.svg"]),
            (["depth", "--depths", "0,3,6"], ["depth-results.csv", "depth.svg"]),
            (["reorder", "--swaps", "0,1"], ["reorder-results.csv", "reorder.svg"]),
            (["paths"], ["paths-results.csv", "paths.svg"]),
        ]
        for (arguments, files) in runs {
            let out = folder.appendingPathComponent(arguments[0]).path
            let result = try CLI.run(arguments + [checkpoint, "--data", data, "-o", out, "--quiet"])
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            for file in files {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(file)"), "\(arguments[0]) did not write \(file)")
            }
            let csv = try String(contentsOfFile: "\(out)/\(arguments[0])-results.csv", encoding: .utf8)
            XCTAssertTrue(csv.hasPrefix("analysis,checkpoint,schedule,experiment,configuration,member,block,k,metric,value,mask,seed\n"))
            let svg = try String(contentsOfFile: "\(out)/\(files.first { $0.hasSuffix(".svg") }!)", encoding: .utf8)
            XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.hasSuffix("</svg>\n"))
        }
    }

    func testFixedSubNetworksWithBatchNormRecalibration() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let runs: [(arguments: [String], configuration: String)] = [
            (["lesion", "--drop", "2,5"], "drop-list-2,5-recalibrated"),
            (["sample", "--members", "2"], "sample-1-recalibrated"),
            (["depth", "--depths", "3", "--trials", "1"], "depth-3-trial-0-recalibrated"),
        ]
        for (arguments, configuration) in runs {
            let out = folder.appendingPathComponent(arguments[0]).path
            let result = try CLI.run(arguments + [checkpoint, "--data", data, "--recalibrate", "20", "--recalibration-data", data,
                                                  "-o", out, "--quiet"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let masks = try String(contentsOfFile: "\(out)/\(arguments[0])-masks.csv", encoding: .utf8)
            XCTAssertTrue(masks.contains("\(configuration)"), masks)
        }
        let lonely = try CLI.run(["sample", checkpoint, "--data", data, "--recalibration-data", data, "-o", folder.path])
        XCTAssertEqual(lonely.status, 64)
        XCTAssertTrue(lonely.stderr.contains("--recalibration-data needs --recalibrate N"), lonely.stderr)
        let one = try CLI.run(["depth", checkpoint, "--data", data, "--recalibrate", "1", "-o", folder.path])
        XCTAssertEqual(one.status, 64)
        XCTAssertTrue(one.stderr.contains("--recalibrate needs at least 2 images"), one.stderr)
        let missing = try CLI.run(["lesion", checkpoint, "--data", data, "--drop", "2", "--recalibrate", "20", "-o", folder.path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("give --recalibration-data"), missing.stderr)
    }

    func testReportWritesTheResultsFolderAndSummary() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["report", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--members", "2", "--trials", "1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let summary = try String(contentsOfFile: folder.appendingPathComponent("summary.md").path, encoding: .utf8)
        for heading in ["# DepthLens report", "## Deterministic network", "## Deleting one block", "## Monte Carlo ensemble of 2",
                        "## Paths", "48 images"] {
            XCTAssertTrue(summary.contains(heading), "summary lacks \(heading)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        XCTAssertTrue(files.allSatisfy { !$0.contains(".partial") }, "\(files)")
        XCTAssertGreaterThanOrEqual(files.filter { $0.hasSuffix(".svg") }.count, 6)
    }

    func testBadAnalysisFlagsGetClearMessages() throws {
        let noSchedule = try CLI.run(["paths", CLI.fixture("malformed/valid-tiny.h5"), "--schedule", "lineer"])
        XCTAssertEqual(noSchedule.status, 1)
        XCTAssertTrue(noSchedule.stderr.contains("'lineer': unknown schedule"), noSchedule.stderr)
        let zero = try CLI.run(["ensemble", checkpoint, "--data", data, "--members", "0"])
        XCTAssertEqual(zero.status, 64)
        XCTAssertTrue(zero.stderr.contains("--members must be at least 1"), zero.stderr)
        let metric = try CLI.run(["sample", checkpoint, "--data", data, "--metric", "acuracy", "-o", CLI.temporaryDirectory().path])
        XCTAssertEqual(metric.status, 1)
        XCTAssertTrue(metric.stderr.contains("unknown metric"), metric.stderr)
        let block = try CLI.run(["lesion", checkpoint, "--data", data, "--drop", "9", "-o", CLI.temporaryDirectory().path])
        XCTAssertTrue(block.stderr.contains("block 9 does not exist"), block.stderr)
    }
}
