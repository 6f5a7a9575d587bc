import Foundation
import XCTest
import DepthLens

/// timm's `VisionTransformer` (tools/make_vit_golden.py): logits from timm's own forward
/// in float64 matched under every gate pattern, per branch and per block; the presets
/// against timm's full-size key tables; the architecture a train_timm.py export records.
final class VisionTransformerTests: XCTestCase {
    static let models = ["vit_token", "vit_avg_ls", "vit_cls_avg", "vit_token_fcnorm", "vit_avg_norm"]

    /// The model's weights: a plain dump read with the cases file's `arch`, or a file that
    /// records its own architecture.
    static func load(_ model: String) throws -> Checkpoint {
        let arch = try HDF5File.open(Fixtures.path("vit/\(model).cases.h5")).root.attribute("arch").string ?? ""
        let path = Fixtures.path("vit/\(model).safetensors")
        if arch.isEmpty { return try Checkpoint.load(from: path) }
        return try Checkpoint.load(from: path, preset: try ArchitecturePreset.named(arch))
    }

    /// max |difference| <= 1e-4 of the logits' scale (at least 1), and the same argmax.
    func assertMatches(_ logits: Tensor, _ expected: [Float], _ label: String) {
        let scale = max(1, expected.map(abs).max() ?? 0)
        assertLogits(logits, match: expected, classes: 10, label, tolerance: 1e-4 * scale)
    }

    func testBothEnginesMatchTimmUnderEveryBranchGatePattern() throws {
        var checked = 0
        var report: [String] = []
        for model in Self.models {
            let checkpoint = try Self.load(model)
            XCTAssertEqual(checkpoint.architecture.family, "timm_vit")
            let network = Network(checkpoint: checkpoint)
            XCTAssertEqual(network.blockCount, 2 * checkpoint.blockCount, "\(model): two residual units a block")
            let cases = try HDF5File.open(Fixtures.path("vit/\(model).cases.h5")).root
            let batch = try goldenImages(cases)
            let group = try cases.group("cases")
            for backend in [Evaluator.Backend.reference, .fast] {
                var worst: Float = 0
                for threads in [1, 3] {
                    let evaluator = Evaluator(network: network, threads: threads, backend: backend, unit: .branch)
                    for name in try group.memberNames() {
                        let golden = try group.group(name)
                        let expected = try golden.dataset("logits").readFloats()
                        let logits = try evaluator.logits(batch, gates: try goldenGates(golden))
                        assertMatches(logits, expected, "\(model)/\(backend)/\(name)/threads \(threads)")
                        worst = max(worst, zip(logits.scalars, expected).map { abs($0 - $1) }.max() ?? 0)
                        checked += 1
                    }
                }
                report.append("\(model) \(backend): max |logit difference| \(worst)")
            }
        }
        print(report.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(checked, 300)
    }

    /// With gates per block, one entry drives both branches of its block: dropping block b
    /// is timm with both of its drop-path slots at 0, and the configurations entry point
    /// gives the same logits.
    func testBlockGatesDriveBothBranchesOfTheirBlock() throws {
        for model in Self.models {
            let checkpoint = try Self.load(model)
            let network = Network(checkpoint: checkpoint)
            let cases = try HDF5File.open(Fixtures.path("vit/\(model).cases.h5")).root
            let batch = try goldenImages(cases)
            let evaluator = Evaluator(network: network, threads: 2, backend: .reference, unit: .block)
            let depth = checkpoint.blockCount
            XCTAssertEqual(evaluator.gateCount, depth)
            var vectors: [[Float]] = []
            var expected: [[Float]] = []
            for b in 0..<depth {
                var gates = [Float](repeating: 1, count: depth)
                gates[b] = 0
                vectors.append(gates)
                expected.append(try cases.group("cases").group("block_\(b + 1)_dropped").dataset("logits").readFloats())
                assertMatches(try evaluator.logits(batch, gates: .shared(gates)), expected[b], "\(model) block \(b + 1) dropped")
            }
            for (logits, golden) in zip(try evaluator.logits(batch, configurations: vectors), expected) {
                assertMatches(logits, golden, "\(model) configurations")
            }
            XCTAssertThrowsError(try evaluator.logits(batch, gates: .shared([Float](repeating: 1, count: 2 * depth)))) { error in
                XCTAssertTrue("\(error)".contains("has \(2 * depth) entries but the network has \(depth) blocks"), "\(error)")
            }
        }
    }

    /// The fused engine lowers every layer of a vision transformer: it runs them itself.
    func testFastEngineRunsTransformersItself() throws {
        XCTAssertTrue(Evaluator.isFastEngineAvailable)
        let network = Network(checkpoint: try Self.load("vit_token"))
        XCTAssertNil(Evaluator(network: network, backend: .fast).fastEngineRefusal)
    }

    /// The presets give exactly timm's keys and shapes for the full-size networks (from the
    /// shapes alone, as for a dump), and timm's parameter count.
    func testPresetsMatchTimmsKeyTablesAndParameterCounts() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("vit/layouts.json")))
        let layouts = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        XCTAssertEqual(layouts.count, 4)
        for (name, layout) in layouts {
            let table = try XCTUnwrap(layout["tensors"] as? [[Any]])
            let shapes = Dictionary(uniqueKeysWithValues: table.map { ($0[0] as! String, ($0[1] as! [Int])) })
            let architecture = try ArchitecturePreset.named(name).architecture { shapes[$0] }
            XCTAssertEqual(architecture.vit?.imageSize, [224, 224], name)
            XCTAssertEqual(architecture.vit?.patchSize, 16, name)
            XCTAssertEqual(architecture.blockCount, 12, name)
            let expected = Dictionary(uniqueKeysWithValues: architecture.expectedTensors.map { ($0.key, $0.shape) })
            XCTAssertEqual(expected, shapes, name)
            XCTAssertEqual(architecture.expectedTensors.count, table.count, name)
            XCTAssertEqual(architecture.parameterCount, layout["parameters"] as? Int, name)
        }
    }

    /// tools/train_timm.py's metadata: timm's keyword arguments become the architecture,
    /// the drop-path record the schedule, p_l = 1 - rate, per-example gates, inverted rule.
    func testExportedFileRecordsItsArchitectureAndTimmsDropPath() throws {
        let checkpoint = try Checkpoint.load(from: Fixtures.path("vit/vit_avg_ls.safetensors"))
        let vit = try XCTUnwrap(checkpoint.architecture.vit)
        XCTAssertEqual(vit, VisionTransformerSpec(imageSize: [32, 32], patchSize: 8, embedDim: 32, depth: 3, numHeads: 4,
                                                  mlpHidden: 96, qkvBias: false, classToken: false, globalPool: .avg,
                                                  fcNorm: true, layerScale: true))
        XCTAssertEqual(checkpoint.architecture.inChannels, 3)
        let training = try XCTUnwrap(checkpoint.training)
        XCTAssertEqual(training.testTimeRule, .inverted)
        XCTAssertEqual(training.gateGranularity, .sample)
        XCTAssertEqual(training.schedule, TrainingMetadata.Schedule(name: "linear-from-zero", params: ["r": 0.2]))
        let p = try XCTUnwrap(training.survivalProbabilities)
        // timm's rates are float32 (torch.linspace): p_l = 1 - 0.2 (l - 1) / 2 to float32 precision.
        for (l, value) in p.enumerated() { XCTAssertEqual(value, 1 - 0.2 * Double(l) / 2, accuracy: 1e-7) }
        // Each branch has its block's p when gates address branches.
        let network = Network(checkpoint: checkpoint)
        XCTAssertEqual(network.survivalPerGate(p, unit: .branch), [p[0], p[0], p[1], p[1], p[2], p[2]])
        XCTAssertEqual(network.survivalPerGate(p, unit: .block), p)
        XCTAssertEqual(network.gateNames(.branch), ["blocks.0 attn", "blocks.0 mlp", "blocks.1 attn", "blocks.1 mlp",
                                                    "blocks.2 attn", "blocks.2 mlp"])
        XCTAssertEqual(network.gateNames(.block), ["blocks.0", "blocks.1", "blocks.2"])
        // What schedules see: timm's key prefix (it used to read layer1.B.), identity blocks.
        let blocks = checkpoint.architecture.blocks
        XCTAssertEqual(blocks.map(\.keyPrefix), ["blocks.0.", "blocks.1.", "blocks.2."])
        for block in blocks {
            XCTAssertNotNil(checkpoint.tensors[block.keyPrefix + "attn.qkv.weight"], block.keyPrefix)
            XCTAssertEqual(block.shortcut, .identity)
        }
    }

    func testPlanningCostCountsAttentionOverEveryPairOfTokens() throws {
        // vit_avg_ls: 3x32x32 images, patch 8 (16 tokens, no class token), width 32.
        let model = try Self.load("vit_avg_ls").architecture.modelDescription
        XCTAssertEqual(model.units[0].branch.count, 3)  // norm1, attention, ls1
        let cost = try model.computeCost(height: 32, width: 32)
        let (c, tokens) = (32.0, 16.0)
        let multiplyAdds = 4 * c * c * tokens + 2 * tokens * tokens * c  // qkv + proj; q k^T and the sum over v
        XCTAssertEqual(cost.branches[0], 2 * multiplyAdds + 2 * c * tokens)  // + layer norm and layer scale
    }

    func testArchitectureJSONRoundTripsAndRefusesWhatItDoesNotKnow() throws {
        let architecture = try Self.load("vit_cls_avg").architecture
        let json = architecture.json()
        XCTAssertTrue(json.contains("\"family\":\"timm_vit\""), json)
        XCTAssertFalse(json.contains("stages"), json)
        XCTAssertEqual(try Architecture.parse(json: json), architecture)
        let extra = json.replacingOccurrences(of: "\"depth\":", with: "\"stages\":[],\"depth\":")
        XCTAssertThrowsError(try Architecture.parse(json: extra)) { error in
            XCTAssertEqual((error as? ArchitectureError)?.field, "stages")
        }
        let heads = json.replacingOccurrences(of: "\"num_heads\":2", with: "\"num_heads\":3")
        XCTAssertThrowsError(try Architecture.parse(json: heads)) { error in
            XCTAssertEqual("\(error)", "architecture field 'num_heads': must divide embed_dim 16, found 3")
        }
        for (kwargs, field) in [(["reg_tokens": 4], "timm_kwargs.reg_tokens"), (["no_embed_class": true], "timm_kwargs.no_embed_class"),
                                (["global_pool": "map"], "timm_kwargs.global_pool"), (["mystery": 1], "timm_kwargs.mystery")] as [([String: Any], String)] {
            XCTAssertThrowsError(try Architecture.fromTimm(className: Architecture.timmVisionTransformerClass, kwargs: kwargs)) { error in
                XCTAssertEqual((error as? ArchitectureError)?.field, field, "\(error)")
            }
        }
    }

    func testImagesOfAnotherSizeAreRefusedNamingThePositionEmbedding() throws {
        let network = Network(checkpoint: try Self.load("vit_token"))
        let batch = ImageBatch(count: 1, channels: 1, height: 32, width: 32, pixels: [Float](repeating: 0, count: 32 * 32))
        XCTAssertThrowsError(try Evaluator(network: network, backend: .reference).logits(batch)) { error in
            XCTAssertTrue("\(error)".contains("the position embedding has 50 tokens but the image gives 65"), "\(error)")
        }
    }

    func testBatchNormRecalibrationRefusesLayerNorm() throws {
        let checkpoint = try Self.load("vit_token")
        let images = ImageBatch(count: 2, channels: 1, height: 28, width: 28, pixels: [Float](repeating: 0.5, count: 2 * 784))
        XCTAssertThrowsError(try BatchNormRecalibration.recalibrate(checkpoint, gates: [1, 1], source: BatchSource(images),
                                                                    batchSize: 2)) { error in
            XCTAssertTrue("\(error)".contains("(timm_vit) has no batch norm"), "\(error)")
        }
    }
}
