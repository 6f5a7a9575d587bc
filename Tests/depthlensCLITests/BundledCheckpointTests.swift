import DepthLens
import Foundation
import XCTest

/// The checkpoints shipped in data/ predict, image by image, what PyTorch predicted on a
/// committed subset of the Fashion-MNIST test set (tools/make_eval_subset.py), and
/// `depthlens eval` counts the same number of correct predictions.
final class BundledCheckpointTests: XCTestCase {
    static let subset = CLI.fixture("fashion-mnist-subset/t10k-images-idx3-ubyte.gz")

    struct Summary: Decodable {
        var subset_images: Int
        var subset_correct: Int
        var test_images: Int
        var test_correct: Int
        var rule: String?
    }

    func shipped() throws -> [String: Summary] {
        let data = try Data(contentsOf: URL(fileURLWithPath: CLI.fixture("fashion-mnist-subset/summary.json")))
        return try JSONDecoder().decode([String: Summary].self, from: data)
    }

    func testEveryShippedCheckpointHasPyTorchPredictions() throws {
        let files = try CLI.shippedCheckpoints()
        XCTAssertFalse(files.isEmpty, "no checkpoint in data/")
        XCTAssertEqual(Set(files), Set(try shipped().keys), "data/ and the committed predictions list different checkpoints")
    }

    func testPredictionsMatchPyTorchImageByImage() throws {
        for (name, summary) in try shipped().sorted(by: { $0.key < $1.key }) {
            let path = CLI.packageRoot.appendingPathComponent(CLI.shippedFile(name)).path
            let checkpoint = try Checkpoint.load(from: path)
            let source = try DataSetRequest(path: Self.subset).open(for: checkpoint)
            XCTAssertEqual(source.count, summary.subset_images)
            let rule = try XCTUnwrap(checkpoint.training?.testTimeRule)
            XCTAssertEqual(rule.rawValue, summary.rule)
            let gates = try GateConfiguration(rule: rule).resolve(for: checkpoint)
            let (result, predictions) = try DataSetEvaluation.run(Evaluator(network: Network(checkpoint: checkpoint)), on: source,
                                                                  gates: .shared(gates), batchSize: 100)
            let csv = try String(contentsOfFile: CLI.fixture("fashion-mnist-subset/predictions-\(name).csv"), encoding: .utf8)
            let expected = csv.split(separator: "\n").dropFirst().map { Int($0.split(separator: ",")[2])! }
            XCTAssertEqual(predictions, expected, "\(name): predictions differ from PyTorch's")
            XCTAssertEqual(result.correct, summary.subset_correct, name)
            // The recorded full-test-set accuracy is what the checkpoint's metadata says.
            let recorded = checkpoint.training?.extras["test_correct"].flatMap { Int($0) }
            XCTAssertEqual(recorded, summary.test_correct, "\(name): metadata and PyTorch disagree on the full test set")
        }
    }

    /// Every analysis runs on every shipped checkpoint; the deterministic network's accuracy
    /// in the lesion, ensemble and report results is what `eval` counts on the same images.
    func testEveryAnalysisRunsOnEveryShippedCheckpoint() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let analyses: [[String]] = [
            ["lesion", "--single", "--random-k", "2", "--trials", "1", "--prune-depth", "6", "--prune-rule", "every-other"],
            ["lesion", "--prune-depth", "6", "--prune-rule", "greedy", "--held-out", "24"],
            ["ensemble", "--members", "2", "--granularity", "sample"],
            ["sample", "--members", "2"],
            ["depth", "--depths", "0,6", "--trials", "1"],
            ["reorder", "--swaps", "0,2", "--trials", "1"],
            ["paths"],
            ["report", "--members", "2", "--trials", "1"],
        ]
        let images = 48
        for name in try shipped().keys.sorted() {
            let eval = try CLI.run(["eval", CLI.shippedFile(name), "--data", Self.subset, "--limit", "\(images)", "--json", "--quiet"])
            XCTAssertEqual(eval.status, 0, eval.stderr)
            let counted = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any], eval.stdout)
            let correct = try XCTUnwrap(counted["correct"] as? Int, eval.stdout)
            var folders: [String: String] = [:]
            for (i, arguments) in analyses.enumerated() {
                let out = folder.appendingPathComponent("\(name)-\(i)-\(arguments[0])").path
                folders[arguments[0]] = folders[arguments[0]] ?? out  // the first run of each
                // paths evaluates no network and refuses data options.
                let data = arguments == ["paths"] ? [] : ["--data", Self.subset, "--limit", "\(images)"]
                let result = try CLI.run(arguments + [CLI.shippedFile(name)] + data + ["-o", out, "--quiet"])
                XCTAssertEqual(result.status, 0, "\(name) \(arguments): \(result.stderr)")
                let written = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
                XCTAssertTrue(written.contains { $0.hasSuffix("-results.csv") }, "\(name) \(arguments[0]) wrote \(written)")
            }
            let deterministic: [(file: String, experiment: String)] = [
                ("\(folders["lesion"]!)/lesion-results.csv", "full-network"), ("\(folders["ensemble"]!)/ensemble-results.csv", "deterministic"),
                ("\(folders["report"]!)/lesion-results.csv", "full-network"), ("\(folders["report"]!)/ensemble-results.csv", "deterministic"),
            ]
            for (file, experiment) in deterministic {
                let accuracy = try CLI.records(file).first { $0["experiment"] == experiment && $0["metric"] == "accuracy" }?["value"]
                XCTAssertEqual(accuracy.flatMap(Double.init), Double(correct) / Double(images), "\(name): \(file)")
            }
            let summary = try String(contentsOfFile: "\(folders["report"]!)/summary.md", encoding: .utf8)
            let error = String(format: "%.2f%%", 100 * (1 - Double(correct) / Double(images)))
            XCTAssertTrue(summary.contains(" rule | \(error) | "), "\(name): summary.md does not state eval's error \(error):\n\(summary)")
        }
    }

    func testEvalCommandCountsTheSameCorrectPredictions() throws {
        for (name, summary) in try shipped() {
            let result = try CLI.run(["eval", CLI.shippedFile(name), "--data", Self.subset, "--json", "--quiet"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stdout.contains("\"correct\" : \(summary.subset_correct),"), result.stdout)
        }
    }
}
