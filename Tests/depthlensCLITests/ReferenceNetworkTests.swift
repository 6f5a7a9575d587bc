import DepthLens
import Foundation
import XCTest

/// Every reference network (agreement, reference_kl, the lesion baseline) is the
/// deterministic network under the checkpoint's test-time rule, and `predict` and `eval`
/// default to that rule (issue 22, points 1 and 2). data/fmnist-sd54.h5 records the
/// expectation rule, so its deterministic network scales block l's residual by p_l and
/// differs from the all-blocks-on network.
final class ReferenceNetworkTests: XCTestCase {
    static let checkpoint = "data/fmnist-sd54.h5"
    static let images = 300
    static var data: [String] {
        ["--data", CLI.fixture("fashion-mnist-subset/t10k-images-idx3-ubyte.gz"), "--limit", "\(images)"]
    }

    /// Logits of `predict` as CSV rows (N x C), and its standard error.
    func predict(_ arguments: [String], checkpoint: String = checkpoint,
                 file: StaticString = #filePath, line: UInt = #line) throws -> (logits: [[Float]], stderr: String, stdout: String) {
        let result = try CLI.run(["predict", checkpoint] + Self.data + arguments)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        let records = try XCTUnwrap(CSVTable(parsing: result.stdout), file: file, line: line).records
        let classes = records.first.map { $0.keys.filter { $0.hasPrefix("logit_") }.count } ?? 0
        let logits = records.map { record in (0..<classes).map { Float(record["logit_\($0)"]!)! } }
        return (logits, result.stderr, result.stdout)
    }

    /// The first maximal class.
    func argmax(_ row: [Float]) -> Int {
        var best = 0
        for c in row.indices where row[c] > row[best] { best = c }
        return best
    }

    func testLesionAgreementIsAgainstTheExpectationRuleNetwork() throws {
        let dropped = [1, 19, 54]
        let result = try CLI.run(["lesion", Self.checkpoint] + Self.data
            + ["--single", "--metric", "agreement", "--metric", "reference_kl", "--json", "--quiet",
               "-o", CLI.temporaryDirectory().path])
        XCTAssertEqual(result.status, 0, result.stderr)
        var rows: [String: [String: Any]] = [:]
        for entry in try CLI.jsonResults(result.stdout) {
            rows[entry["configuration"] as! String] = try XCTUnwrap(entry["metrics"] as? [String: Any])
        }
        let none = try XCTUnwrap(rows["none"], "\(rows.keys.sorted())")
        XCTAssertEqual(none["agreement"] as? Double, 1, "the deterministic network agrees with itself")
        XCTAssertEqual(none["reference_kl"] as? Double, 0, "and does not diverge from itself")

        // Independently: predict's expectation-rule logits against those with block l dropped.
        let reference = try predict(["--rule", "expectation"]).logits
        XCTAssertEqual(reference.count, Self.images)
        let allOn = try predict(["--gates", Array(repeating: "1", count: 54).joined(separator: ",")]).logits
        let allOnAgreement = Double(zip(reference, allOn).filter { argmax($0) == argmax($1) }.count) / Double(Self.images)
        XCTAssertLessThan(allOnAgreement, 1, "the all-blocks-on network is another network, so the check below can tell them apart")
        for block in dropped {
            let lesioned = try predict(["--rule", "expectation", "--drop", "\(block)"]).logits
            let matches = zip(reference, lesioned).filter { argmax($0) == argmax($1) }.count
            let row = try XCTUnwrap(rows["drop-\(block)"])
            // The same count of matching images (the JSON printer may round the last digit).
            let agreement = try XCTUnwrap(row["agreement"] as? Double)
            XCTAssertEqual(agreement * Double(Self.images), Double(matches), accuracy: 1e-9, "drop-\(block)")
            XCTAssertNotEqual(agreement * Double(Self.images), Double(zip(allOn, lesioned).filter { argmax($0) == argmax($1) }.count),
                              accuracy: 1e-9, "drop-\(block) agrees as well with the all-blocks-on network; pick a telling block")
            let kl = try XCTUnwrap(row["reference_kl"] as? Double)
            XCTAssertGreaterThan(kl, 0, "drop-\(block)")
        }
    }

    func testPredictDefaultsToTheRecordedRuleAndSaysSo() throws {
        let byDefault = try predict([])
        XCTAssertTrue(byDefault.stderr.contains("predict: rule: expectation (recorded in the checkpoint)"), byDefault.stderr)
        XCTAssertFalse(byDefault.stderr.contains("warning"), byDefault.stderr)
        let recorded = try predict(["--rule", "expectation"])
        XCTAssertEqual(byDefault.stdout, recorded.stdout, "predict's default is the recorded rule's network")
        XCTAssertTrue(recorded.stderr.contains("predict: rule: expectation (--rule, as the checkpoint records)"), recorded.stderr)
        let overridden = try predict(["--rule", "inverted"])
        XCTAssertNotEqual(overridden.stdout, byDefault.stdout)
        XCTAssertTrue(overridden.stderr.contains("predict: warning: --rule inverted overrides the checkpoint's recorded rule expectation"),
                      overridden.stderr)
        let explicit = try predict(["--gates", Array(repeating: "1", count: 54).joined(separator: ",")])
        XCTAssertTrue(explicit.stderr.contains("predict: rule: none (--gates gives every gate)"), explicit.stderr)
        XCTAssertEqual(explicit.stdout, overridden.stdout, "the inverted rule's network is every block on")

        let timm = try predict([], checkpoint: "data/fmnist-timm27.h5")
        XCTAssertTrue(timm.stderr.contains("predict: rule: inverted (recorded in the checkpoint)"), timm.stderr)
    }

    func testEvalDefaultsToTheRecordedRuleAndWarnsOnAnOverride() throws {
        let byDefault = try CLI.run(["eval", Self.checkpoint] + Self.data + ["--quiet"])
        XCTAssertEqual(byDefault.status, 0, byDefault.stderr)
        XCTAssertTrue(byDefault.stderr.contains("eval: rule: expectation (recorded in the checkpoint)"), byDefault.stderr)
        XCTAssertTrue(byDefault.stdout.contains("Rule        expectation\n"), byDefault.stdout)
        let overridden = try CLI.run(["eval", Self.checkpoint] + Self.data + ["--quiet", "--rule", "inverted"])
        XCTAssertEqual(overridden.status, 0, overridden.stderr)
        XCTAssertTrue(overridden.stderr.contains("eval: warning: --rule inverted overrides the checkpoint's recorded rule expectation"),
                      overridden.stderr)
        XCTAssertTrue(overridden.stdout.contains("Rule        inverted (overrides the recorded expectation)"), overridden.stdout)

        // eval's accuracy is predict's default network's, image by image.
        let predicted = try predict([])
        let labels = try XCTUnwrap(CSVTable(parsing: predicted.stdout)).records.map { Int($0["label"]!)! }
        let correct = zip(predicted.logits, labels).filter { argmax($0) == $1 }.count
        XCTAssertTrue(byDefault.stdout.contains("(\(correct)/\(Self.images) correct)"), byDefault.stdout)
    }
}

/// `predict --gates-file`: one gate vector per image, from CSV or HDF5 (issue 22, point 8e).
final class PredictGatesFileTests: XCTestCase {
    func testPerExampleGatesFromCSVAndHDF5MatchPyTorch() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases = CLI.fixture("golden/official.cases.h5")
        let golden = try HDF5File.open(cases).root.group("cases").group("per-example-inverted")
        let gates = try golden.dataset("gates")
        XCTAssertEqual(gates.shape, [6, 6])
        let values = try gates.readFloats()
        let expected = try golden.dataset("logits").readFloats()
        let rows = (0..<6).map { n in (0..<6).map { "\(values[n * 6 + $0])" }.joined(separator: ",") }
        let csv = folder.appendingPathComponent("gates.csv").path
        try Data((["g1,g2,g3,g4,g5,g6"] + rows).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: csv))
        let h5 = folder.appendingPathComponent("gates.h5").path
        do {  // closed before the binary opens it
            let file = try HDF5File.create(h5)
            try file.root.write(values, shape: [6, 6], as: "gates")
        }
        for path in [csv, h5] {
            let result = try CLI.run(["predict", CLI.fixture("golden/official.ckpt.h5"), "--data", cases, "--gates-file", path,
                                      "--batch-size", "4"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stderr.contains("predict: rule: none (--gates-file gives every image's gates)"), result.stderr)
            let logits = result.stdout.split(separator: "\n").dropFirst().flatMap { $0.split(separator: ",").dropFirst(2).map { Float(String($0))! } }
            XCTAssertEqual(logits.count, expected.count, path)
            XCTAssertLessThanOrEqual(zip(logits, expected).map { abs($0 - $1) }.max() ?? 1, 1e-4, path)
        }
        let short = folder.appendingPathComponent("short.csv").path
        try Data(rows.prefix(5).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: short))
        let mismatch = try CLI.run(["predict", CLI.fixture("golden/official.ckpt.h5"), "--data", cases, "--gates-file", short])
        XCTAssertEqual(mismatch.status, 1)
        XCTAssertTrue(mismatch.stderr.contains("has 5 gate vector(s) but the data has 6 image(s)"), mismatch.stderr)
        let both = try CLI.run(["predict", CLI.fixture("golden/official.ckpt.h5"), "--data", cases, "--gates-file", csv, "--rule", "inverted"])
        XCTAssertEqual(both.status, 64)
    }
}
