import DepthLens
import XCTest

/// `depthlens inspect` and `depthlens predict`, run as the built executable.
final class InspectAndPredictTests: XCTestCase {
    func testHelpListsTheSubcommands() throws {
        let result = try CLI.run(["--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("inspect"), result.stdout)
        XCTAssertTrue(result.stdout.contains("predict"), result.stdout)
    }

    func testInspectShowsArchitectureBlocksTrainingAndTensors() throws {
        let result = try CLI.run(["inspect", CLI.fixture("golden/official.ckpt.h5")])
        XCTAssertEqual(result.status, 0, result.stderr)
        for line in ["basic (post-activation) blocks, 6 blocks in 3 stages",
                     "option A (average pooling, zero channels at the end)",
                     "3   2      layer2.0      4->8       2       option A  0.7500",
                     "expected number of active blocks: 4.250 of 6",
                     "schedule: linear:pL=0.5", "test-time rule: expectation",
                     "tool: tools/make_golden.py", "layer3.1.conv2.weight", "(16, 16, 3, 3)"] {
            XCTAssertTrue(result.stdout.contains(line), "missing '\(line)' in:\n\(result.stdout)")
        }
    }

    func testInspectSaysWhereOptionAsZeroChannelsGo() throws {
        let result = try CLI.run(["inspect", CLI.fixture("golden/port-subsample.ckpt.h5")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("option A (strided subsampling, zero channels split between both ends)"), result.stdout)
        XCTAssertFalse(result.stdout.contains("at the both"), result.stdout)
    }

    func testInspectOfABadFileFailsWithTheReason() throws {
        let path = CLI.fixture("malformed/tensor-wrong-shape.h5")
        let result = try CLI.run(["inspect", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("\(path): layer2.0.conv1.weight: shape [4, 2, 2, 3] in the file, but the architecture implies [4, 2, 3, 3]"), result.stderr)
        XCTAssertEqual(result.stdout, "")
    }

    func testPredictWritesPyTorchsLogitsAsCSV() throws {
        let result = try CLI.run(["predict", CLI.fixture("golden/port-subsample.ckpt.h5"),
                                  "--data", CLI.fixture("golden/port-subsample.cases.h5"), "--gates", "1,1,1,1,1,1,1", "--drop", "4",
                                  "--batch-size", "4"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "example,predicted,logit_0,logit_1,logit_2,logit_3,logit_4,logit_5,logit_6")
        XCTAssertEqual(lines.count, 7)
        let golden = try HDF5File.open(CLI.fixture("golden/port-subsample.cases.h5")).root
        let expected = try golden.group("cases").group("downsampling-block-4-off").dataset("logits").readFloats()
        let logits = lines.dropFirst().flatMap { $0.split(separator: ",").dropFirst(2).map { Float(String($0))! } }
        XCTAssertEqual(logits.count, expected.count)
        XCTAssertLessThanOrEqual(zip(logits, expected).map { abs($0 - $1) }.max()!, 1e-4)
    }

    func testPredictWritesHDF5WithGatesAndPredictions() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("out.h5").path
        let result = try CLI.run(["predict", CLI.fixture("golden/official.ckpt.h5"), "--data",
                                  CLI.fixture("golden/official.cases.h5"), "--rule", "expectation", "-o", output])
        XCTAssertEqual(result.status, 0, result.stderr)
        let root = try HDF5File.open(output).root
        let golden = try HDF5File.open(CLI.fixture("golden/official.cases.h5")).root.group("cases").group("expectation-linear")
        let expected = try golden.dataset("logits").readFloats()
        let logits = try root.dataset("logits").readFloats()
        XCTAssertEqual(try root.dataset("logits").shape, [6, 7])
        XCTAssertLessThanOrEqual(zip(logits, expected).map { abs($0 - $1) }.max()!, 1e-4)
        XCTAssertEqual(try root.dataset("gates").readFloats(), try golden.dataset("gates").readFloats())
        XCTAssertEqual(try root.dataset("predicted").shape, [6])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.h5"], "no partial files left")
    }

    func testPredictRejectsBadGatesWithoutWritingOutput() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("out.csv").path
        let base = ["predict", CLI.fixture("golden/official.ckpt.h5"), "--data", CLI.fixture("golden/official.cases.h5"), "-o", output]
        let badBlock = try CLI.run(base + ["--drop", "2,9"])
        XCTAssertEqual(badBlock.status, 1)
        XCTAssertTrue(badBlock.stderr.contains("block 9 does not exist; the network has blocks 1...6"), badBlock.stderr)
        let badValue = try CLI.run(base + ["--gates", "1,1,x,1,1,1"])
        XCTAssertEqual(badValue.status, 64)
        XCTAssertTrue(badValue.stderr.contains("--gates: entry 3 ('x') is not a finite number"), badValue.stderr)
        let badLength = try CLI.run(base + ["--gates", "1,1"])
        XCTAssertTrue(badLength.stderr.contains("the gate vector has 2 entries but the network has 6 blocks"), badLength.stderr)
        let badRange = try CLI.run(base + ["--drop", "5-3"])
        XCTAssertTrue(badRange.stderr.contains("--drop: '5-3' is not a block number or a range"), badRange.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }

    func testPredictNamesBadDataFiles() throws {
        let ckpt = CLI.fixture("golden/official.ckpt.h5")
        let mismatch = try CLI.run(["predict", ckpt, "--data", CLI.fixture("malformed/images-labels-mismatch.h5")])
        XCTAssertEqual(mismatch.status, 1)
        XCTAssertTrue(mismatch.stderr.contains("/labels: has shape [4] but there are 5 images"), mismatch.stderr)
        let rank = try CLI.run(["predict", ckpt, "--data", CLI.fixture("malformed/images-rank2.h5")])
        XCTAssertTrue(rank.stderr.contains("/images: has shape [5, 64]; expected (N, C, H, W) or (N, H, W)"), rank.stderr)
        let missing = try CLI.run(["predict", ckpt, "--data", CLI.fixture("golden/official.cases.h5"), "--images-dataset", "pics"])
        XCTAssertTrue(missing.stderr.contains("/pics: no such object"), missing.stderr)
        let size = try CLI.run(["predict", ckpt, "--data", CLI.fixture("golden/projection.cases.h5")])
        XCTAssertTrue(size.stderr.contains("projection.cases.h5: /images: images have 3 channel(s), but \(ckpt) takes 1"), size.stderr)
        let folder = try CLI.run(["predict", ckpt, "--data", CLI.fixture("golden/official.cases.h5"), "-o", "/nonexistent/out.csv"])
        XCTAssertEqual(folder.status, 1)
        XCTAssertTrue(folder.stderr.contains("/nonexistent/out.csv: the folder /nonexistent does not exist"), folder.stderr)
    }
}
