import DepthLens
import Foundation
import XCTest

/// A vision transformer through the command line: a safetensors file that records its
/// architecture (as tools/train_timm.py exports) needs no --arch; `inspect` lists the
/// branches; `--unit` decides whether gates address blocks or branches, and the masks say
/// which.
final class VisionTransformerCLITests: XCTestCase {
    /// 1x28x28, patch 7, 2 blocks, class token with mean pooling, layer scale (tools/make_vit_golden.py).
    static let exported = CLI.fixture("vit/vit_cls_avg.safetensors")
    static let dump = CLI.fixture("vit/vit_token.safetensors")
    static let data = CLI.fixture("fashion-mnist-subset/t10k-images-idx3-ubyte.gz")

    func testInspectListsEveryBlocksTwoBranchesWithGateNumbersAndRates() throws {
        let result = try CLI.run(["inspect", Self.exported, "--operations"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for text in ["timm_vit", "2 blocks of 2 residual branches", "blocks.0", "blocks.1", "attn", "mlp",
                     "self-attention 16, 2 heads", "mean over tokens (class token left out)",
                     "expected number of active branches", "schedule: linear-from-zero:r=0.1", "test-time rule: inverted",
                     "blocks.1.ls2.gamma"] {
            XCTAssertTrue(result.stdout.contains(text), "inspect lacks '\(text)':\n\(result.stdout)")
        }
        // Gates 1...4 in forward order: block 1 attention, block 1 MLP, block 2 attention, block 2 MLP.
        let rows = result.stdout.split(separator: "\n").filter { $0.contains(" attn ") || $0.contains(" mlp ") }
        XCTAssertEqual(rows.count, 4, result.stdout)
        for (g, row) in rows.prefix(4).enumerated() {
            XCTAssertTrue(row.contains(g % 2 == 0 ? "attn" : "mlp") && row.contains(" \(g + 1) "), String(row))
        }
        let dump = try CLI.run(["inspect", Self.dump, "--arch", "timm/deit_tiny_patch16_224", "--no-tensors"])
        XCTAssertEqual(dump.status, 0, dump.stderr)
        XCTAssertTrue(dump.stdout.contains("3 heads of 8"), dump.stdout)
        let missing = try CLI.run(["inspect", Self.dump])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("--arch"), missing.stderr)
    }

    func testEvalOfAnExportedFileNeedsNoArchAndBothEnginesAgree() throws {
        let result = try CLI.run(["eval", Self.exported, "--data", Self.data, "--limit", "40", "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse(result.stderr.contains("note:"), result.stderr)
        XCTAssertTrue(result.stderr.contains("rule: inverted (recorded in the checkpoint)"), result.stderr)
        let reference = try CLI.run(["eval", Self.exported, "--data", Self.data, "--limit", "40", "--quiet"],
                                    environment: ["DEPTHLENS_BACKEND": "reference"])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertFalse(reference.stderr.contains("note:"), reference.stderr)
        func withoutTime(_ text: String) -> [Substring] { text.split(separator: "\n").filter { !$0.hasPrefix("Time") } }
        XCTAssertEqual(withoutTime(reference.stdout), withoutTime(result.stdout))
        XCTAssertTrue(result.stdout.contains("(40 images)"), result.stdout)
    }

    func testLesionGatesBlocksByDefaultAndBranchesWithUnitBranch() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        for unit in ["block", "branch"] {
            let out = folder.appendingPathComponent(unit).path
            let flags = unit == "block" ? [] : ["--unit", unit]
            let result = try CLI.run(["lesion", Self.exported, "--data", Self.data, "--limit", "30", "--single", "--quiet",
                                      "-o", out] + flags)
            XCTAssertEqual(result.status, 0, result.stderr)
            let masks = try CLI.records(out + "/lesion-masks.csv")
            let width = unit == "block" ? 2 : 4
            XCTAssertEqual(masks.map { $0["unit"] }, masks.map { _ in unit })
            XCTAssertEqual(Set(masks.map { $0["gates"]!.split(separator: " ").count }), [width])
            let singles = Set(try CLI.records(out + "/lesion-results.csv").compactMap { $0["experiment"] == "single-lesion" ? $0["block"] : nil })
            XCTAssertEqual(singles, Set((1...width).map(String.init)))
            // drop-2 under --unit branch is block 1's MLP alone.
            let drop2 = try XCTUnwrap(masks.first { $0["mask"] == "drop-2" })
            XCTAssertEqual(drop2["gates"], unit == "block" ? "1.0 0.0" : "1.0 0.0 1.0 1.0")
        }
        let text = try String(contentsOfFile: folder.appendingPathComponent("branch").path + "/lesion-masks.csv", encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("mask,order,gates,unit\n"), text)
    }

    /// Sampled sub-networks under --unit branch draw each branch on its own at its block's
    /// rate and scale kept ones by 1/p (inverted rule), as timm's drop path.
    func testSampleWithUnitBranchDrawsBranchesIndependentlyAsTimm() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try CLI.run(["sample", Self.exported, "--data", Self.data, "--limit", "20", "--members", "40",
                                  "--unit", "branch", "--schedule", "constant:p=0.5", "--quiet", "-o", folder.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let masks = try CLI.records(folder.path + "/sample-masks.csv").filter { $0["mask"]!.hasPrefix("sample-") }
        XCTAssertEqual(masks.count, 40)
        var differing = 0
        for mask in masks {
            let gates = mask["gates"]!.split(separator: " ").map { Double($0)! }
            XCTAssertEqual(gates.count, 4)
            XCTAssertTrue(gates.allSatisfy { $0 == 0 || $0 == 2 }, mask["gates"]!)
            if gates[0] != gates[1] || gates[2] != gates[3] { differing += 1 }
        }
        XCTAssertGreaterThan(differing, 0, "branches of a block were never drawn apart")
    }

    func testRecalibrationAndBadUnitsAreRefusedClearly() throws {
        let recalibrate = try CLI.run(["lesion", Self.exported, "--data", Self.data, "--limit", "10", "--single", "--quiet",
                                       "--recalibrate", "4", "--recalibration-data", Self.data, "-o", CLI.temporaryDirectory().path])
        XCTAssertEqual(recalibrate.status, 1, recalibrate.stderr)
        XCTAssertTrue(recalibrate.stderr.contains("(timm_vit) has no batch norm"), recalibrate.stderr)
        let unit = try CLI.run(["lesion", Self.exported, "--unit", "layer"])
        XCTAssertEqual(unit.status, 64, unit.stderr)
        XCTAssertTrue(unit.stderr.contains("--unit"), unit.stderr)
    }
}
