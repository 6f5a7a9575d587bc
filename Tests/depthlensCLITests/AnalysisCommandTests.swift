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

    /// Every number of the `--json` summary is the CSV's value for the same configuration,
    /// member, k and metric, and the summary leaves no row out.
    func assertSummaryIsTheCSV(_ entries: [[String: Any]], _ records: [[String: String]], _ what: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        var summarized = 0
        for entry in entries {
            let configuration = entry["configuration"] as? String, member = entry["member"] as? String, k = entry["k"] as? Double
            for (metric, number) in entry["metrics"] as? [String: Any] ?? [:] {
                summarized += 1
                let record = records.first { record in
                    let sameK = k.map { abs((record["k"].flatMap(Double.init) ?? .nan) - $0) < 1e-12 } ?? (record["k"] == "")
                    return sameK && record["configuration"] == configuration && (record["member"] ?? "") == member && record["metric"] == metric
                }
                guard let record, let value = record["value"].flatMap(Double.init) else {
                    XCTFail("\(what): no CSV row for \(configuration ?? "?") \(member ?? "?") \(metric)", file: file, line: line)
                    continue
                }
                XCTAssertEqual(record["experiment"], entry["experiment"] as? String, "\(what) \(configuration ?? "?")", file: file, line: line)
                if let number = number as? Double {
                    XCTAssertEqual(number, value, accuracy: 1e-12, "\(what) \(configuration ?? "?") \(metric)", file: file, line: line)
                } else {
                    XCTAssertTrue(value.isNaN, "\(what) \(configuration ?? "?") \(metric): null in the summary, \(value) in the CSV", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(summarized, records.count, "\(what): the summary and the CSV hold different numbers of values", file: file, line: line)
    }

    func testEachAnalysisWritesItsCSVMasksAndPlotsAndSummarizesTheCSV() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let runs: [(arguments: [String], files: [String], experiments: Set<String>)] = [
            (["lesion", "--single", "--random-k", "2", "--trials", "2", "--prune-depth", "3"],
             ["lesion-results.csv", "lesion-masks.csv", "lesion-single-block.svg", "lesion-k-blocks.svg", "lesion-prune.svg"],
             ["full-network", "single-lesion", "random-lesion", "prune"]),
            (["ensemble", "--members", "3", "--granularity", "sample"], ["ensemble-results.csv", "ensemble-accuracy.svg"],
             ["deterministic", "ensemble"]),
            (["sample", "--members", "3"], ["sample-results.csv", "sample-masks.csv", "sample.svg"], ["sample"]),
            (["depth", "--depths", "0,3,6"], ["depth-results.csv", "depth.svg"], ["depth", "deterministic"]),
            (["reorder", "--swaps", "0,1"], ["reorder-results.csv", "reorder.svg"], ["reorder"]),
            (["paths"], ["paths-results.csv", "paths.svg"], ["schedule", "unrolled-binomial"]),
        ]
        for (arguments, files, experiments) in runs {
            let out = folder.appendingPathComponent(arguments[0]).path
            let dataOptions = arguments[0] == "paths" ? [] : ["--data", data]  // paths evaluates no network
            let result = try CLI.run(arguments + [checkpoint] + dataOptions + ["-o", out, "--quiet", "--json"])
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            for file in files {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(file)"), "\(arguments[0]) did not write \(file)")
            }
            let path = "\(out)/\(arguments[0])-results.csv"
            let csv = try String(contentsOfFile: path, encoding: .utf8)
            // The fixed columns always; the optional ones only where some row fills them (docs/results-csv.md).
            let header = try XCTUnwrap(csv.split(separator: "\n").first).split(separator: ",").map(String.init)
            XCTAssertEqual(header.filter { !ResultTable.optionalColumns.contains($0) },
                           ["analysis", "checkpoint", "schedule", "experiment", "configuration", "metric", "value", "seed"])
            XCTAssertEqual(header, ResultTable.header.filter(header.contains), "columns keep their order")
            let records = try CLI.records(path)
            for column in header {
                XCTAssertTrue(records.contains { !($0[column] ?? "").isEmpty }, "\(arguments[0]): column \(column) is empty in every row")
            }
            XCTAssertEqual(Set(records.map { $0["experiment"]! }), experiments, arguments[0])
            assertSummaryIsTheCSV(try CLI.jsonResults(result.stdout), records, arguments[0])
            if FileManager.default.fileExists(atPath: "\(out)/\(arguments[0])-masks.csv") {
                let masks = Set(try CLI.records("\(out)/\(arguments[0])-masks.csv").map { $0["mask"]! })
                let missing = Set(records.map { $0["mask"] ?? "" }).subtracting(masks).subtracting([""])
                XCTAssertTrue(missing.isEmpty, "\(arguments[0]): rows refer to masks not in the masks file: \(missing)")
            }
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

    func testReportSummaryStatesTheNumbersOfItsCSVs() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["report", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--json",
                                  "--members", "2", "--trials", "2", "--max-k", "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let summary = try String(contentsOfFile: folder.appendingPathComponent("summary.md").path, encoding: .utf8)
        for heading in ["# DepthLens report", "## Deterministic network", "## Deleting one block", "## Deleting k random blocks",
                        "## Monte Carlo ensemble of 2", "## Error against the number of active blocks", "## Paths", "48 images",
                        "## Reordered blocks (Veit et al. 2016)", "## Effective paths (Veit et al. 2016, section 5)"] {
            XCTAssertTrue(summary.contains(heading), "summary lacks \(heading)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        XCTAssertTrue(files.allSatisfy { !$0.contains(".partial") }, "\(files)")
        XCTAssertGreaterThanOrEqual(files.filter { $0.hasSuffix(".svg") }.count, 6)
        // index.html: the summary and every plot inline, nothing fetched from elsewhere.
        let page = try String(contentsOfFile: folder.appendingPathComponent("index.html").path, encoding: .utf8)
        XCTAssertTrue(page.hasPrefix("<!DOCTYPE html>") && page.hasSuffix("</html>\n"))
        XCTAssertEqual(page.components(separatedBy: "<svg xmlns").count - 1, files.filter { $0.hasSuffix(".svg") }.count, "every plot inline")
        XCTAssertTrue(page.contains("<h2>Deleting k random blocks</h2>") && page.contains("<th>mean error [95% CI]</th>"))
        XCTAssertFalse(page.contains("src=\"") || page.contains("href=\"") || page.contains("<script"), "readable offline")

        func csv(_ analysis: String) throws -> [[String: String]] { try CLI.records(folder.appendingPathComponent("\(analysis)-results.csv").path) }
        func value(_ records: [[String: String]], _ configuration: String, _ metric: String) -> Double {
            records.first { $0["configuration"] == configuration && $0["metric"] == metric }?["value"].flatMap(Double.init) ?? .nan
        }
        func pct(_ v: Double) -> String { String(format: "%.2f%%", 100 * v) }
        func num(_ v: Double) -> String { String(format: "%.4f", v) }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
        func expect(_ line: String) { XCTAssertTrue(summary.contains(line), "summary lacks '\(line)':\n\(summary)") }

        // report --json prints every table it computed, each equal to its CSV.
        for analysis in ["lesion", "ensemble", "depth", "paths", "reorder", "gradient-paths"] {
            assertSummaryIsTheCSV(try CLI.jsonResults(result.stdout, table: analysis), try csv(analysis), "report --json \(analysis)")
        }
        let ensemble = try csv("ensemble")
        let reference = "deterministic-expectation"
        expect("| expectation rule | \(pct(1 - value(ensemble, reference, "accuracy"))) | \(num(value(ensemble, reference, "nll"))) | \(num(value(ensemble, reference, "ece"))) |")
        let pooled = ["accuracy", "nll", "ece", "mutual_information", "disagreement"].map { value(ensemble, "pass-M-2", $0) }
        expect("| ensemble | \(pct(1 - pooled[0])) | \(pooled.dropFirst().map(num).joined(separator: " | ")) |")
        expect("| one member | \(pct(1 - value(ensemble, "pass-M-1", "accuracy"))) | \(num(value(ensemble, "pass-M-1", "nll"))) |")

        let lesion = try csv("lesion")
        XCTAssertEqual(Set(lesion.map { $0["experiment"]! }), ["full-network", "single-lesion", "random-lesion"])
        XCTAssertFalse(lesion.contains { $0["configuration"] == "k-0-trial-0" }, "k = 0 is the full network, evaluated once")
        let blocks = try Checkpoint.load(from: checkpoint).architecture.blocks
        let singles = lesion.filter { $0["experiment"] == "single-lesion" && $0["metric"] == "accuracy" }
            .map { (block: blocks[Int($0["block"]!)! - 1], error: 1 - Double($0["value"]!)!) }
        XCTAssertEqual(singles.count, blocks.count)
        for (kind, errors) in [("identity-shortcut", singles.filter { $0.block.shortcut == .identity }.map(\.error)),
                               ("downsampling", singles.filter { $0.block.shortcut != .identity }.map(\.error))] {
            let sorted = errors.sorted(), middle = sorted.count / 2
            let median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
            expect("- error with one \(kind) block deleted: mean \(pct(mean(errors))), median \(pct(median)) over \(errors.count) blocks")
        }
        let worst = singles.max { $0.error < $1.error }!
        expect("- most harmful: block \(worst.block.index) (")
        expect(", error \(pct(worst.error))\n")
        for k in 1...2 {
            let errors = lesion.filter { $0["experiment"] == "random-lesion" && $0["k"] == "\(k)" && $0["metric"] == "accuracy" }
                .map { 1 - Double($0["value"]!)! }
            XCTAssertEqual(errors.count, 2, "two trials of k = \(k)")
            let summary = lesion.first { $0["configuration"] == "k-\(k)" && $0["metric"] == "mean_error" }!
            XCTAssertEqual(Double(summary["value"]!)!, mean(errors), accuracy: 1e-12)
            expect("| \(k) | 2 | \(pct(mean(errors))) [\(pct(Double(summary["ci_low"]!)!)), \(pct(Double(summary["ci_high"]!)!))] |")
        }
        let depth = try csv("depth")
        for active in Set(depth.compactMap { $0["member"] == "sub-network" ? $0["k"]! : nil }) {
            let errors = depth.filter { $0["k"] == active && $0["member"] == "sub-network" && $0["metric"] == "accuracy" }.map { 1 - Double($0["value"]!)! }
            XCTAssertEqual(errors.count, active == "0" || active == "6" ? 1 : 2, "depth \(active): depth 0 and L once")
            expect("| \(active) | \(errors.count) | \(pct(mean(errors))) ")
        }
        // Reorder: the mean error of the orders drawn with each number of swaps.
        let reorder = try csv("reorder").filter { $0["metric"] == "accuracy" }
        for swaps in [0, 2, 8] {
            let orders = reorder.filter { $0["configuration"]!.hasPrefix("swaps-\(swaps)-trial-") }
            XCTAssertEqual(orders.count, swaps == 0 ? 1 : 2, "swaps \(swaps)")
            let errors = orders.map { 1 - Double($0["value"]!)! }
            expect("| \(swaps) | \(orders.count) | ")
            expect(" | \(pct(mean(errors))) | \(pct(errors.max()!)) |")
        }
        // Effective paths: the range and mode the gradient-paths CSV holds.
        let gradients = try csv("gradient-paths")
        expect("- paths of \(Int(value(gradients, "effective-paths", "effective_length_low"))) to \(Int(value(gradients, "effective-paths", "effective_length_high"))) of the 6 blocks carry 90% of the gradient at the input (most at length \(Int(value(gradients, "effective-paths", "most_gradient_length")))")
        expect("- 8 images, 4 route patterns per length")
        let paths = try csv("paths")
        expect("- expected active blocks under the schedule: \(num(value(paths, "schedule", "mean_active_blocks"))) (variance \(num(value(paths, "schedule", "variance_active_blocks"))))")
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
