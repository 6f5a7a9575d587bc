import DepthLens
import XCTest

/// timm's ConvNeXt on the command line: a .safetensors file that records its
/// architecture needs no --arch; predictions are timm's logits; batch-norm recalibration
/// is refused with the reason.
final class ConvNeXtCLITests: XCTestCase {
    static let exported = CLI.fixture("convnext/patch1_linear_ls.safetensors")
    static let cases = CLI.fixture("convnext/patch1_linear_ls.cases.h5")

    func testInspectReadsTheRecordedArchitectureAndDropPath() throws {
        let result = try CLI.run(["inspect", Self.exported, "--operations"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for line in ["(safetensors, architecture recorded in its metadata)", "timm_convnext (timm ConvNeXt), 5 blocks in 4 stages",
                     "1x1/1 patch stem of width 8 and layer norm; 10 classes",
                     "stage 2: 1 blocks, width 12, begins with layer norm and 2x2/2 convolution (downsample)",
                     "2   2      stages.1.blocks.0  8->12      2       downsample 0.9750",
                     "schedule: linear-from-zero:r=0.1", "test-time rule: inverted",
                     "2 stages.1.blocks.0: pre layer norm 8, conv 2x2/2 8->12; branch depthwise conv 7x7 12, layer norm 12, "
                     + "pointwise linear 12->48, gelu, pointwise linear 48->12, layer scale 12; shortcut identity (of pre)",
                     "head: global avg pool, layer norm 20, linear 20->10", "stages.0.blocks.0.gamma", "layer scale"] {
            XCTAssertTrue(result.stdout.contains(line), "missing '\(line)' in:\n\(result.stdout)")
        }
    }

    func testPredictGivesTimmsLogitsWithADownsamplingBlockDropped() throws {
        for backend in ["reference", "fast"] {
            let result = try CLI.run(["predict", Self.exported, "--data", Self.cases, "--mean", "0", "--std", "1", "--drop", "2"],
                                     environment: ["DEPTHLENS_BACKEND": backend])
            XCTAssertEqual(result.status, 0, result.stderr)
            let lines = result.stdout.split(separator: "\n")
            XCTAssertEqual(lines.count, 7, result.stdout)
            let expected = try HDF5File.open(Self.cases).root.group("cases").group("drop_first_of_stage2").dataset("logits").readFloats()
            let logits = lines.dropFirst().flatMap { $0.split(separator: ",").dropFirst(2).map { Float(String($0))! } }
            XCTAssertEqual(logits.count, expected.count)
            XCTAssertLessThanOrEqual(zip(logits, expected).map { abs($0 - $1) }.max() ?? 1, 1e-4 * max(1, expected.map(abs).max()!), backend)
        }
    }

    func testRecalibrationIsRefusedForLayerNorm() throws {
        let result = try CLI.run(["lesion", Self.exported, "--single", "--data", Self.cases, "--recalibrate", "4",
                                  "--recalibration-data", Self.cases, "--output", NSTemporaryDirectory() + "/depthlens-cnx-\(UUID())"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--recalibrate: batch-norm recalibration does not apply"), result.stderr)
        XCTAssertTrue(result.stderr.contains("uses layer norm"), result.stderr)
    }
}
