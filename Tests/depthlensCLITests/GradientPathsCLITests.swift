import DepthLens
import Foundation
import XCTest

/// `depthlens paths --gradients`: Veit et al.'s gradient magnitude by path length and the
/// effective paths, as tidy rows whose numbers follow from each other and from the
/// library's backward pass.
final class GradientPathsCLITests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    func run(_ extra: [String], folder: URL) throws -> [[String: String]] {
        let result = try CLI.run(["paths", checkpoint, "--gradients", "--data", data, "--quiet", "-o", folder.path] + extra)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try CLI.records(folder.appendingPathComponent("gradient-paths-results.csv").path)
    }

    func testEachLengthSummarisesItsDrawsAndTheSharesAreMagnitudeTimesPathCountNormalised() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let rows = try run(["--gradient-images", "6", "--samples", "3"], folder: folder)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        for file in ["paths-results.csv", "gradient-paths-results.csv", "gradient-paths-masks.csv", "gradient-paths-magnitude.svg",
                     "gradient-paths-effective.svg"] {
            XCTAssertTrue(files.contains(file), "\(file) missing from \(files)")
        }
        XCTAssertEqual(Set(rows.map { $0["experiment"]! }), ["gradient-paths"])
        let blocks = try Checkpoint.load(from: checkpoint).blockCount
        func value(_ configuration: String, _ metric: String) throws -> Double {
            try XCTUnwrap(rows.first { $0["configuration"] == configuration && $0["metric"] == metric }?["value"].flatMap(Double.init),
                          "\(configuration) \(metric)")
        }
        var totals: [Double] = []
        for k in 0...blocks {
            let draws = rows.filter { $0["k"] == "\(k)" && $0["member"] == "sub-network" }
            XCTAssertEqual(draws.count, k == 0 || k == blocks ? 1 : 3, "length \(k): one draw at 0 and L, --samples otherwise")
            let means = draws.map { Double($0["value"]!)! }
            XCTAssertEqual(try value("length-\(k)", "mean_gradient_norm"), means.reduce(0, +) / Double(means.count), accuracy: 1e-15)
            XCTAssertEqual(try value("length-\(k)", "samples"), Double(draws.count))
            XCTAssertEqual(try value("length-\(k)", "images"), 6)
            let choose = (0..<k).reduce(1.0) { $0 * Double(blocks - $1) / Double($1 + 1) }
            XCTAssertEqual(try value("length-\(k)", "path_count"), choose.rounded())
            XCTAssertEqual(try value("length-\(k)", "total_gradient"), try value("length-\(k)", "mean_gradient_norm") * choose.rounded(),
                           accuracy: 1e-12)
            XCTAssertLessThanOrEqual(try value("length-\(k)", "q25_gradient_norm"), try value("length-\(k)", "median_gradient_norm"))
            XCTAssertLessThanOrEqual(try value("length-\(k)", "median_gradient_norm"), try value("length-\(k)", "q75_gradient_norm"))
            let mean = rows.first { $0["configuration"] == "length-\(k)" && $0["metric"] == "mean_gradient_norm" }!
            XCTAssertEqual(mean["method"], "bootstrap-percentile")
            XCTAssertEqual(mean["n"], k == 0 || k == blocks ? "6" : "3", "over the images of one draw, or over the draws")
            XCTAssertLessThanOrEqual(Double(mean["ci_low"]!)!, Double(mean["value"]!)!)
            XCTAssertGreaterThanOrEqual(Double(mean["ci_high"]!)!, Double(mean["value"]!)!)
            totals.append(try value("length-\(k)", "total_gradient"))
        }
        let sum = totals.reduce(0, +)
        for k in 0...blocks {
            XCTAssertEqual(try value("length-\(k)", "gradient_share"), totals[k] / sum, accuracy: 1e-12)
        }
        let shares = totals.map { $0 / sum }
        let range = GradientPathsAnalysis.effectiveRange(shares)
        XCTAssertEqual(try value("effective-paths", "effective_length_low"), Double(range.low))
        XCTAssertEqual(try value("effective-paths", "effective_length_high"), Double(range.high))
        XCTAssertEqual(try value("effective-paths", "most_gradient_length"), Double(shares.indices.max { shares[$0] < shares[$1] }!))

        // Each draw's mask marks the blocks whose branch the gradient crossed: k of them.
        let masks = try CLI.records(folder.appendingPathComponent("gradient-paths-masks.csv").path)
        for draw in rows where draw["member"] == "sub-network" {
            let mask = try XCTUnwrap(masks.first { $0["mask"] == draw["mask"] }, draw["mask"]!)
            let gates = mask["gates"]!.split(separator: " ").map { Double($0)! }
            XCTAssertEqual(gates.filter { $0 == 1 }.count, Int(draw["k"]!)!, draw["mask"]!)
        }
    }

    /// The k = L row (every branch, no shortcut) is the library's backward pass on the
    /// first images with every block routed through its branch, under the rule's gates.
    func testTheLongestPathIsTheLibrarysBackwardPassThroughEveryBranch() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let rows = try run(["--gradient-images", "5", "--samples", "2"], folder: folder)
        let ckpt = try Checkpoint.load(from: checkpoint)
        let source = try HDF5ImageSource(path: data)
        let batch = ImageBatch(count: 5, channels: source.channels, height: source.height, width: source.width, pixels: try source.pixels(0..<5))
        let labels = try XCTUnwrap(try source.labels(0..<5))
        let gates = try XCTUnwrap(ckpt.training?.survivalProbabilities).map { Float($0) }  // the expectation rule's p_l
        XCTAssertEqual(ckpt.training?.testTimeRule, .expectation)
        let norms = try Evaluator(network: Network(checkpoint: ckpt), threads: 1)
            .inputGradientNorms(batch, labels: labels, gates: gates, routes: [[BackwardRoute](repeating: .branch, count: ckpt.blockCount)])[0]
        let csvValue = try XCTUnwrap(rows.first { $0["configuration"] == "length-\(ckpt.blockCount)-sample-0" }?["value"].flatMap(Double.init))
        XCTAssertEqual(csvValue, norms.reduce(0, +) / 5, accuracy: 1e-6 * csvValue)
    }

    func testTheSameSeedGivesTheSameBytesAndAnotherSeedOtherDraws() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let arguments = ["--gradient-images", "3", "--samples", "2", "--threads", "1"]
        _ = try run(arguments, folder: folder.appendingPathComponent("a"))
        _ = try run(arguments + ["--threads", "2"], folder: folder.appendingPathComponent("b"))
        _ = try run(arguments + ["--seed", "7"], folder: folder.appendingPathComponent("c"))
        func bytes(_ name: String) throws -> Data { try Data(contentsOf: folder.appendingPathComponent("\(name)/gradient-paths-masks.csv")) }
        XCTAssertEqual(try bytes("a"), try bytes("b"))
        XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("a/gradient-paths-results.csv")),
                       try Data(contentsOf: folder.appendingPathComponent("b/gradient-paths-results.csv")), "threads change nothing")
        XCTAssertNotEqual(try bytes("a"), try bytes("c"))
    }

    func testAFamilyWithoutABackwardPassIsRefusedInOneLineNamingIt() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["paths", CLI.fixture("convnext/patch1_linear_ls.safetensors"), "--gradients",
                                  "--data", CLI.fixture("convnext/patch1_linear_ls.cases.h5"), "--mean", "0", "--std", "1",
                                  "-o", folder.appendingPathComponent("out").path])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("--gradients: the backward pass (input gradients) runs the ResNet families only; timm_convnext uses"),
                      result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("out").path), "nothing written")
    }

    func testDryRunCountsTheBackwardPassesAndWritesNothing() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out").path
        let result = try CLI.run(["paths", checkpoint, "--gradients", "--data", data, "--gradient-images", "10", "--samples", "3",
                                  "--dry-run", "-o", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        let blocks = try Checkpoint.load(from: checkpoint).blockCount
        // Lengths 1...L-1 three draws each, 0 and L one; 10 images in units of 4.
        XCTAssertTrue(result.stdout.contains("| 1 | \(3 * (blocks - 1) + 2) backward route patterns | 3 image chunks | 10 |"), result.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
