import DepthLens
import Foundation
import XCTest

/// `--save-probabilities`: every member's probabilities on every image, whose accuracy and
/// NLL are the ones the results CSV reports for that member.
final class SaveProbabilitiesTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    func testSampleSavesEachMembersProbabilitiesMatchingItsMetrics() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("p.h5").path
        let result = try CLI.run(["sample", checkpoint, "--data", data, "--quiet", "--members", "3", "-o", folder.path,
                                  "--save-probabilities", file])
        XCTAssertEqual(result.status, 0, result.stderr)
        let root = try HDF5File.open(file).root
        let C = try Checkpoint.load(from: checkpoint).architecture.numClasses
        XCTAssertEqual(try root.dataset("probabilities").shape, [3, 48, C])
        XCTAssertEqual(try root.dataset("gates").shape, [3, 6])
        XCTAssertEqual(try root.dataset("labels").shape, [48])
        let p = try root.dataset("probabilities").readFloats(), labels = try root.dataset("labels").readIntegers().map(Int.init)
        let records = try CLI.records(folder.appendingPathComponent("sample-results.csv").path)
        let masks = try CLI.records(folder.appendingPathComponent("sample-masks.csv").path)
        let gates = try root.dataset("gates").readFloats()
        for m in 0..<3 {
            var correct = 0, nll = 0.0
            for n in 0..<48 {
                let row = Array(p[((m * 48 + n) * C)..<((m * 48 + n + 1) * C)])
                XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                if row.indices.max(by: { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }) == labels[n] { correct += 1 }
                nll -= log(Double(row[labels[n]]))
            }
            func value(_ metric: String) -> Double {
                Double(records.first { $0["configuration"] == "sample-\(m)" && $0["metric"] == metric }!["value"]!)!
            }
            XCTAssertEqual(Double(correct) / 48, value("accuracy"), accuracy: 1e-12, "member \(m)")
            XCTAssertEqual(nll / 48, value("nll"), accuracy: 1e-4, "member \(m)")
            let maskGates = masks.first { $0["mask"] == "sample-\(m)" }!["gates"]!.split(separator: " ").map { Float($0)! }
            XCTAssertEqual(Array(gates[(m * 6)..<((m + 1) * 6)]), maskGates, "member \(m)'s mask")
        }
        let refused = try CLI.run(["ensemble", checkpoint, "--data", data, "--members", "2", "--granularity", "sample",
                                   "--save-probabilities", file])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("--save-probabilities needs --granularity pass"), refused.stderr)
    }
}
