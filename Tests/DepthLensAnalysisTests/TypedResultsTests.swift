import DepthLens
import Foundation
import XCTest

/// Every result row says which experiment and member it is about; the results CSV's
/// `experiment`, `configuration`, `member`, `block` and `k` columns follow from that alone
/// (docs/results-csv.md).
final class TypedResultsTests: XCTestCase {
    func records(_ table: ResultTable, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: String]] {
        try XCTUnwrap(CSVTable(parsing: table.resultsCSV), "the results CSV does not read back", file: file, line: line).records
    }

    func testASingleLesionRowCarriesItsBlockAndOneBlockDeleted() throws {
        let table = try LesionAnalysis.run(try AnalysisTests.context("official"), lesions: LesionAnalysis.singleBlocks(count: 6))
        let rows = table.rows.filter { $0.experiment == .singleLesion(block: 4) }
        XCTAssertEqual(rows.map(\.metric), ["active_blocks", "accuracy", "nll", "discordant_lost", "discordant_gained"],
                       "McNemar's counts against the full network come with accuracy")
        for row in rows {
            XCTAssertEqual(row.k, 1, "k is the number of blocks deleted, not the block")
            XCTAssertEqual(row.member, .deterministic)
            XCTAssertEqual(row.configuration, "drop-4")
            XCTAssertEqual(row.mask, "drop-4")
        }
        XCTAssertEqual(table.value("active_blocks", of: .singleLesion(block: 4)), 5)
        let csv = try records(table)
        let accuracy = try XCTUnwrap(csv.first { $0["configuration"] == "drop-4" && $0["metric"] == "accuracy" })
        XCTAssertEqual(accuracy["experiment"], "single-lesion")
        XCTAssertEqual(accuracy["block"], "4")
        XCTAssertEqual(accuracy["k"], "1")
        XCTAssertEqual(accuracy["member"], "deterministic")
        XCTAssertEqual(accuracy["value"].flatMap(Double.init), table.value("accuracy", of: .singleLesion(block: 4)))
        let full = try XCTUnwrap(csv.first { $0["configuration"] == "none" && $0["metric"] == "active_blocks" })
        XCTAssertEqual([full["experiment"], full["block"], full["k"], full["value"]], ["full-network", "", "0", "6"])
        XCTAssertEqual(Set(csv.compactMap { $0["block"] }.filter { !$0.isEmpty }), Set((1...6).map(String.init)))
    }

    func testRandomLesionRowsCarryTheBlocksDeletedAndTheTrial() throws {
        let lesions = LesionAnalysis.randomBlocks(count: 6, maxK: 3, trials: 2, seed: 7)
        let drawn: [Experiment] = [.randomLesion(k: 0, trial: 0)] + (1...3).flatMap { k in (0..<2).map { Experiment.randomLesion(k: k, trial: $0) } }
        XCTAssertEqual(lesions.map(\.experiment), drawn)
        let table = try LesionAnalysis.run(try AnalysisTests.context("official"), lesions: lesions)
        for row in table.rows {
            guard case .randomLesion(let k, let trial) = row.experiment else { return XCTFail("\(row)") }
            XCTAssertEqual(row.k, Double(k))
            XCTAssertEqual(row.configuration, "k-\(k)-trial-\(trial)")
            if row.metric == "active_blocks" { XCTAssertEqual(row.value, Double(6 - k)) }
        }
        for record in try records(table) {
            XCTAssertEqual(record["experiment"], "random-lesion")
            XCTAssertNil(record["block"], "no row has a block: the column is left out")
            XCTAssertTrue(record["configuration"]!.hasPrefix("k-\(record["k"]!)-trial-"), "\(record)")
            XCTAssertEqual(record["configuration"], "k-\(record["k"]!)-trial-\(record["trial"]!)")
        }
    }

    func testEveryLesionCountsTheBlocksItDeletesInK() throws {
        let context = try AnalysisTests.context("official")
        let pruned = try LesionAnalysis.prune(blocks: context.checkpoint.architecture.blocks, depth: 3, rule: "evenly-spaced")
        XCTAssertEqual(pruned.experiment, .pruned(rule: "evenly-spaced", depth: 6 - pruned.dropped.count))
        let lesions = [LesionAnalysis.Lesion(.dropList("2,5"), dropped: [2, 5]), .init(.keepList("1-3"), dropped: [4, 5, 6]), pruned]
        let table = try LesionAnalysis.run(context, lesions: lesions)
        for lesion in lesions {
            let rows = table.rows.filter { $0.experiment == lesion.experiment }
            XCTAssertEqual(rows.count, 5, lesion.name)
            XCTAssertTrue(rows.allSatisfy { $0.k == Double(lesion.dropped.count) }, lesion.name)
            XCTAssertEqual(table.value("active_blocks", of: lesion.experiment), Double(6 - lesion.dropped.count), lesion.name)
        }
        let kinds = try records(table).map { [$0["experiment"]!, $0["configuration"]!, $0["k"]!] }
        XCTAssertEqual(kinds.first, ["drop-list", "drop-list-2,5", "2"], "a comma inside a configuration is quoted and reads back")
        XCTAssertTrue(kinds.contains(["keep-list", "keep-list-1-3", "3"]))
        XCTAssertTrue(kinds.contains(["prune", pruned.name, "\(pruned.dropped.count)"]))
    }

    func testEnsembleAndPathRowsNameTheirExperiment() throws {
        let context = try AnalysisTests.context("official")
        let table = try EnsembleAnalysis.run(context, members: 3, granularity: .pass)
        let sizes = table.rows.compactMap { row -> Int? in
            guard case .ensemble(.pass, let members) = row.experiment else { return nil }
            XCTAssertEqual(row.member, .ensemble)
            XCTAssertEqual(row.k, Double(members))
            return members
        }
        XCTAssertEqual(Set(sizes), [1, 2, 3])
        let reference = table.rows.filter { $0.member == .deterministic }
        XCTAssertFalse(reference.isEmpty)
        XCTAssertTrue(reference.allSatisfy { $0.experiment == .deterministic(rule: .expectation) && $0.k == nil })
        let csv = try records(table)
        XCTAssertEqual(Set(csv.map { $0["experiment"]! }), ["ensemble", "deterministic"])
        XCTAssertTrue(csv.filter { $0["experiment"] == "deterministic" }.allSatisfy { $0["configuration"] == "deterministic-expectation" })
        XCTAssertTrue(csv.filter { $0["experiment"] == "ensemble" }.allSatisfy { $0["configuration"] == "pass-M-\($0["k"]!)" })

        let paths = PathsAnalysis.run(survival: context.survival, checkpoint: "c", schedule: "s")
        let pathRecords = try records(paths)
        XCTAssertEqual(Set(pathRecords.map { $0["experiment"]! }), ["schedule", "unrolled-binomial"])
        XCTAssertTrue(pathRecords.allSatisfy { $0["experiment"] == $0["configuration"] && $0["member"] == nil && $0["mask"] == nil },
                      "paths has no member and no mask: those columns are left out, not written empty")
        XCTAssertEqual(paths.value("mean_active_blocks", of: .scheduleDistribution)!, context.survival.reduce(0, +), accuracy: 1e-12)
    }

    func testRecalibrationMarksTheConfigurationButKeepsTheExperiment() throws {
        let row = ResultRow(analysis: "depth", experiment: .fixedDepth(active: 3, trial: 1), recalibrated: true, member: .number(1),
                            k: 3, metric: "nll", value: 0.5)
        XCTAssertEqual(row.configuration, "depth-3-trial-1-recalibrated")
        var table = ResultTable(checkpoint: "c", schedule: "s", seed: 0)
        table.append(row)
        XCTAssertNil(table.value("nll", of: .fixedDepth(active: 3, trial: 1)), "a recalibrated row is another sub-network")
        let record = try XCTUnwrap(try records(table).first)
        XCTAssertEqual(record["experiment"], "depth")
        XCTAssertEqual(record["configuration"], "depth-3-trial-1-recalibrated")
        XCTAssertEqual(record["member"], "sub-network", "member holds words only; the number is the trial")
        XCTAssertEqual(record["trial"], "1")
    }

    func testCSVReadsBackWhatItWrites() {
        var table = CSVTable(header: ["a", "b", "c"])
        table.append(["drop-list-1,2", "say \"hi\"", ""])
        table.append(["two\nlines", "plain", "x"])
        XCTAssertEqual(CSVTable(parsing: table.text)?.rows, table.rows)
        XCTAssertNil(CSVTable(parsing: "a,b\n1\n"), "a row with too few fields")
        XCTAssertNil(CSVTable(parsing: "a,b\n\"1,2\n"), "an open quote")
    }
}
