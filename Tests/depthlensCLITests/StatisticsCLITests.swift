import DepthLens
import Foundation
import XCTest

/// `lesion --random-k` and `depth` report means and medians with intervals, McNemar's test
/// of every single lesion, and draw random deletions only from the blocks allowed.
final class StatisticsCLITests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    func testRandomDeletionDrawsOnlyDroppableBlocksOutsideTheExcludedOnes() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Blocks 1 and 2 survive with probability 1: --droppable-only leaves 3...6; --exclude 4 leaves 3, 5, 6.
        let result = try CLI.run(["lesion", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--random-k", "3",
                                  "--trials", "3", "--schedule", "custom:values=[1,1,0.9,0.8,0.7,0.6]",
                                  "--droppable-only", "--exclude", "4"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let masks = try CLI.records(folder.appendingPathComponent("lesion-masks.csv").path)
        XCTAssertFalse(masks.isEmpty)
        for mask in masks {
            let gates = mask["gates"]!.split(separator: " ").map { Double($0)! }
            for block in [1, 2, 4] { XCTAssertNotEqual(gates[block - 1], 0, "\(mask["mask"]!) deletes block \(block)") }
        }
        let records = try CLI.records(folder.appendingPathComponent("lesion-results.csv").path)
        let trials = { (k: Int) in Set(records.filter { $0["k"] == "\(k)" && $0["member"] == "deterministic" }.map { $0["configuration"]! }).count }
        XCTAssertEqual([trials(0), trials(1), trials(2), trials(3)], [1, 3, 3, 1], "k = 0 and k = every candidate (3) once")
        let summary = try XCTUnwrap(records.first { $0["configuration"] == "k-2" && $0["metric"] == "median_error" })
        XCTAssertEqual(summary["member"], "over-trials")
        XCTAssertEqual(summary["method"], "bootstrap-percentile")
        XCTAssertEqual(summary["n"], "3")
        XCTAssertLessThanOrEqual(Double(summary["ci_low"]!)!, Double(summary["value"]!)!)
        XCTAssertGreaterThanOrEqual(Double(summary["ci_high"]!)!, Double(summary["value"]!)!)

        let none = try CLI.run(["lesion", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--random-k", "2",
                                "--schedule", "constant:p=1", "--droppable-only"])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("--random-k: no block may be deleted after --exclude and --droppable-only"), none.stderr)
        let alone = try CLI.run(["lesion", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--single", "--exclude", "2"])
        XCTAssertNotEqual(alone.status, 0)
        XCTAssertTrue(alone.stderr.contains("give --random-k K"), alone.stderr)
        let bad = try CLI.run(["lesion", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--random-k", "2", "--exclude", "9"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--exclude"), bad.stderr)
        let width = try CLI.run(["depth", checkpoint, "--data", data, "--ci-width", "0"])
        XCTAssertEqual(width.status, 64)
        XCTAssertTrue(width.stderr.contains("--ci-width must be in (0, 1]"), width.stderr)
    }

    func testSingleLesionsCarryWilsonIntervalsAndMcNemarsTestAgainstTheFullNetwork() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["lesion", checkpoint, "--data", data, "-o", folder.path, "--quiet", "--single"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let records = try CLI.records(folder.appendingPathComponent("lesion-results.csv").path)
        for block in 1...6 {
            func value(_ metric: String) -> Double? {
                records.first { $0["configuration"] == "drop-\(block)" && $0["metric"] == metric }?["value"].flatMap(Double.init)
            }
            let lost = try XCTUnwrap(value("discordant_lost")), gained = try XCTUnwrap(value("discordant_gained"))
            let test = try XCTUnwrap(records.first { $0["configuration"] == "drop-\(block)" && $0["metric"] == "mcnemar_p" })
            let expected = Statistics.mcNemar(lost: Int(lost), gained: Int(gained))
            XCTAssertEqual(Double(test["value"]!)!, expected.p, accuracy: 1e-15)
            XCTAssertEqual(test["method"], expected.method)
            XCTAssertEqual(test["n"], "\(Int(lost + gained))")
            let error = try XCTUnwrap(records.first { $0["configuration"] == "drop-\(block)" && $0["metric"] == "error" })
            let wilson = try XCTUnwrap(Statistics.wilson(successes: (1 - value("accuracy")!) * 48, n: 48))
            XCTAssertEqual(error["method"], "wilson")
            XCTAssertEqual(error["n"], "48")
            XCTAssertEqual(Double(error["ci_low"]!)!, wilson.low, accuracy: 1e-12)
            XCTAssertEqual(Double(error["ci_high"]!)!, wilson.high, accuracy: 1e-12)
        }
    }
}
