import Foundation
import XCTest
import DepthLens

/// timm's ConvNeXt (tools/make_convnext_golden.py): logits from timm's own forward pass in
/// float64, matched by both engines under every gate pattern (max |logit difference| <=
/// 1e-4 of the logits' scale, same argmax); .safetensors files that record their
/// architecture (format v1's JSON, or tools/train_timm.py's export) and plain ones read
/// with `--arch` presets; the presets against timm's full-size key lists and parameter
/// counts; what the family refuses.
final class ConvNeXtGoldenTests: XCTestCase {
    static let models = ["patch1_linear_ls", "patch4_convmlp_nols", "patch2_odd", "atto_narrow", "tiny_narrow"]

    /// The model's safetensors file, read as the cases file's `arch` attribute says (a
    /// preset), or by its recorded architecture.
    static func load(_ model: String) throws -> Checkpoint {
        let arch = try HDF5File.open(Fixtures.path("convnext/\(model).cases.h5")).root.attribute("arch").string ?? ""
        let path = Fixtures.path("convnext/\(model).safetensors")
        if arch.isEmpty { return try Checkpoint.load(from: path) }
        return try Checkpoint.load(from: path, preset: try ArchitecturePreset.named(arch))
    }

    func testBothEnginesMatchTimmUnderEveryGatePattern() throws {
        XCTAssertTrue(Evaluator.isFastEngineAvailable)
        var checked = 0
        var report: [String] = []
        for model in Self.models {
            let checkpoint = try Self.load(model)
            XCTAssertTrue(checkpoint.architecture.isConvNeXt, model)
            let network = Network(checkpoint: checkpoint)
            let cases = try HDF5File.open(Fixtures.path("convnext/\(model).cases.h5")).root
            let batch = try goldenImages(cases)
            let group = try cases.group("cases")
            let names = try group.memberNames()
            XCTAssertGreaterThanOrEqual(names.count, 11, model)
            for backend in [Evaluator.Backend.reference, .fast] {
                var worst: Float = 0
                for threads in [1, 2] {
                    let evaluator = Evaluator(network: network, threads: threads, backend: backend)
                    for name in names {
                        let golden = try group.group(name)
                        let expected = try golden.dataset("logits").readFloats()
                        let scale = max(1, expected.map(abs).max() ?? 0)
                        let logits = try evaluator.logits(batch, gates: try goldenGates(golden))
                        assertLogits(logits, match: expected, classes: checkpoint.architecture.numClasses,
                                     "\(model)/\(backend)/\(name)/threads \(threads)", tolerance: 1e-4 * scale)
                        worst = max(worst, (zip(logits.scalars, expected).map { abs($0 - $1) }.max() ?? 0) / scale)
                        checked += 1
                    }
                }
                report.append("\(model) \(backend): max |logit difference| / scale \(worst)")
            }
            // The configurations API (the fused engine's prefix sharing) on the shared gate vectors.
            let shared = try names.compactMap { name -> (String, [Float])? in
                let golden = try group.group(name)
                guard golden.contains("gates"), try golden.dataset("gates").shape.count == 1 else { return nil }
                return (name, try golden.dataset("gates").readFloats())
            }
            for backend in [Evaluator.Backend.reference, .fast] {
                let all = try Evaluator(network: network, threads: 2, backend: backend).logits(batch, configurations: shared.map(\.1))
                for (i, (name, _)) in shared.enumerated() {
                    let expected = try group.group(name).dataset("logits").readFloats()
                    assertLogits(all[i], match: expected, classes: checkpoint.architecture.numClasses,
                                 "\(model)/configurations/\(backend)/\(name)", tolerance: 1e-4 * max(1, expected.map(abs).max() ?? 0))
                }
            }
        }
        print(report.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(checked, 5 * 2 * 2 * 11)
    }

    func testPresetsDescribeTimmsFullSizeKeysShapesAndParameterCounts() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("convnext/layouts.json")))
        let layouts = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        let names = ArchitecturePreset.all.filter { $0.family == Architecture.convNeXtFamily }.map(\.name)
        XCTAssertEqual(Set(names), ["timm/convnext_atto", "timm/convnext_femto", "timm/convnext_pico", "timm/convnext_nano",
                                    "timm/convnext_tiny"])
        XCTAssertEqual(Set(layouts.keys), Set(names))
        for name in names {
            let layout = try XCTUnwrap(layouts[name])
            let shapes = try XCTUnwrap(layout["tensors"] as? [String: [Int]], name)
            let architecture = try ArchitecturePreset.named(name).architecture { shapes[$0] }
            try architecture.validate()
            let expected = Dictionary(uniqueKeysWithValues: architecture.expectedTensors.map { ($0.key, $0.shape) })
            XCTAssertEqual(expected, shapes, name)
            XCTAssertEqual(architecture.parameterCount, layout["parameters"] as? Int, name)
            XCTAssertEqual(architecture.numClasses, 1000, name)
            XCTAssertEqual(architecture.inChannels, 3, name)
        }
    }

    func testRecordedMetadataGivesArchitectureAndTimmsDropPath() throws {
        // tools/train_timm.py's export: timm kwargs and a drop_path record.
        let exported = try Checkpoint.load(from: Fixtures.path("convnext/patch1_linear_ls.safetensors"))
        let settings = try XCTUnwrap(exported.architecture.convNeXt)
        XCTAssertEqual(settings, ConvNeXtSettings(inChannels: 1, numClasses: 10, patchSize: 1, depths: [1, 1, 2, 1],
                                                  dims: [8, 12, 16, 20]))
        let training = try XCTUnwrap(exported.training)
        XCTAssertEqual(training.schedule?.name, "linear-from-zero")
        XCTAssertEqual(training.schedule?.params["r"], 0.1)
        XCTAssertEqual(training.testTimeRule, .inverted)
        XCTAssertEqual(training.gateGranularity, .sample)
        XCTAssertEqual(training.dataset, "fashion-mnist")
        let p = try XCTUnwrap(training.survivalProbabilities)
        XCTAssertEqual(p.count, 5)
        for (l, value) in p.enumerated() { XCTAssertEqual(value, 1 - 0.1 * Double(l) / 4, accuracy: 1e-6) }
        // Format v1's JSON: written and read back unchanged.
        let v1 = try Checkpoint.load(from: Fixtures.path("convnext/patch2_odd.safetensors"))
        XCTAssertEqual(try Architecture.parse(json: v1.architecture.json()), v1.architecture)
        XCTAssertEqual(v1.architecture.convNeXt?.normEps, 1e-5)
        XCTAssertEqual(v1.architecture.convNeXt?.kernelSize, 5)
        XCTAssertEqual(v1.architecture.convNeXt?.convBias, false)
        XCTAssertEqual(v1.architecture.convNeXt?.stageStrides, [2, 2, 2, 2])
        XCTAssertEqual(v1.architecture.blockCount, 5)
    }

    func testDownsamplingBlocksNeverMoveAndKeepTheirDownsamplingWhenDropped() throws {
        let network = Network(checkpoint: try Self.load("patch4_convmlp_nols"))
        let model = network.model
        // Stage 1 (patch 4) does not downsample; stages 2-4 begin with layer norm + 2x2/2 convolution.
        XCTAssertTrue(model.units[0].hasIdentityShortcut)
        XCTAssertEqual(model.units[2].preActivation.map(\.summary), ["layer norm 16", "conv 2x2/2 16->16"])
        XCTAssertFalse(model.units[2].hasIdentityShortcut)
        XCTAssertEqual(network.swappableGroups, [[1, 2], [6]])
        XCTAssertThrowsError(try network.reordered([1, 2, 4, 3, 5, 6])) { error in
            XCTAssertEqual(error as? BlockOrderError, .cannotMove(block: 4, position: 3))
        }
        XCTAssertNoThrow(try network.reordered([2, 1, 3, 4, 5, 6]))
    }

    /// What schedules, metrics and pruning see of ConvNeXt's blocks (issue 20's known gaps):
    /// timm's key prefix, and for a stage's first block an identity shortcut, since
    /// deleting it leaves the stage's downsampling in place. So pruning may delete it (and
    /// greedy pruning may choose it), while reordering still never moves it.
    func testBlocksAreDescribedAsTimmsModulesAndAStagesFirstBlockMayBePruned() throws {
        let checkpoint = try Self.load("patch4_convmlp_nols")
        let blocks = checkpoint.architecture.blocks
        let network = Network(checkpoint: checkpoint)
        XCTAssertEqual(blocks.map(\.keyPrefix), network.model.units.map { $0.name + "." })
        XCTAssertEqual(blocks.map(\.keyPrefix), ["stages.0.blocks.0.", "stages.0.blocks.1.", "stages.1.blocks.0.",
                                                 "stages.2.blocks.0.", "stages.3.blocks.0.", "stages.3.blocks.1."])
        for block in blocks {
            XCTAssertNotNil(checkpoint.tensors[block.keyPrefix + "conv_dw.weight"], "\(block.keyPrefix) names the block's tensors")
            XCTAssertEqual(block.shortcut, .identity, "block \(block.index)")
            XCTAssertEqual(block.stride, 1)
            XCTAssertEqual(block.inChannels, block.outChannels)
        }
        XCTAssertEqual(blocks.map(\.outChannels), checkpoint.architecture.convNeXt!.depths.enumerated().flatMap { s, depth in
            Array(repeating: checkpoint.architecture.convNeXt!.dims[s], count: depth)
        })
        // Pruning to 3 blocks, downsampling blocks "kept": a ConvNeXt has none to keep, so
        // the stages' first blocks (3, 4, 5) are among those the rule deletes.
        let pruned = try LesionAnalysis.prune(blocks: blocks, depth: 3, rule: "evenly-spaced", keepDownsampling: true)
        XCTAssertEqual(pruned.dropped.count, 3)
        XCTAssertTrue(pruned.dropped.contains { [3, 4, 5].contains($0) }, "\(pruned.dropped)")
        // Reordering: still only blocks after a stage's first.
        XCTAssertEqual(network.swappableGroups, [[1, 2], [6]])
        XCTAssertThrowsError(try network.reordered([1, 2, 4, 3, 5, 6]))

        // Greedy pruning down to one block: it used to refuse any depth below 3 (the three
        // stage-first blocks were "downsampling blocks" it never deletes).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("convnext-greedy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let images = try HDF5ImageSource(path: Fixtures.path("convnext/patch4_convmlp_nols.cases.h5"), labelsDataset: nil)
        let heldOut = folder.appendingPathComponent("held-out.h5").path
        do {
            let root = try HDF5File.create(heldOut).root
            try root.write(try images.pixels(0..<images.count), shape: [images.count, images.channels, images.height, images.width], as: "images")
            try root.write((0..<images.count).map { Int64($0 % checkpoint.architecture.numClasses) }, shape: [images.count], as: "labels")
        }
        let source = try HDF5ImageSource(path: heldOut)
        let context = AnalysisContext(checkpoint: checkpoint, evaluator: Evaluator(network: network, threads: 1), source: source,
                                      batchSize: 6, survival: Array(repeating: 1, count: 6), scheduleName: "none", rule: .inverted,
                                      metrics: ["accuracy"], registry: PluginRegistry.shared, seed: 0)
        let deleted = try GreedyPrune.choose(context, heldOut: source, depth: 1)
        XCTAssertEqual(deleted.count, 5)
        XCTAssertGreaterThanOrEqual(Set(deleted).intersection([3, 4, 5]).count, 2, "\(deleted)")
    }

    func testPlanningCostCountsDepthwiseAndPointwiseMultiplyAddsOnce() throws {
        // patch1_linear_ls: stage 1 is 8 channels at 28x28 (patch 1), one block of
        // 7x7 depthwise conv, layer norm, fc1 8->32, GELU, fc2 32->8, layer scale.
        let model = try Self.load("patch1_linear_ls").architecture.modelDescription
        XCTAssertEqual(model.units[0].branch.map(\.summary), ["depthwise conv 7x7 8", "layer norm 8", "pointwise linear 8->32",
                                                              "gelu", "pointwise linear 32->8", "layer scale 8"])
        let cost = try model.computeCost(height: 28, width: 28)
        let pixels = 28.0 * 28, c = 8.0
        let multiplyAdds = (c * 49 + c * 4 * c + 4 * c * c) * pixels  // depthwise: 49 per output, not 8 x 49
        let elementWise = (c + 4 * c + c) * pixels  // layer norm, GELU, layer scale: one per output value
        XCTAssertEqual(cost.branches[0], 2 * multiplyAdds + elementWise)
    }

    func testUnsupportedVariantsAreRefusedByName() throws {
        func refusal(_ kwargs: [String: Any]) -> String {
            do {
                _ = try ConvNeXtSettings(timmKwargs: kwargs)
                return "accepted"
            } catch { return "\(error)" }
        }
        let base: [String: Any] = ["in_chans": 1, "num_classes": 10, "depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8]]
        XCTAssertEqual(refusal(base), "accepted")
        // Arguments as JSON gives them (tools/train_timm.py's timm_kwargs): booleans, null, numbers.
        let json = #"{"in_chans": 3, "num_classes": 5, "depths": [1, 2, 1, 1], "dims": [8, 16, 24, 32], "conv_mlp": true,"#
            + #" "ls_init_value": null, "norm_eps": 1e-5, "patch_size": 2, "kernel_sizes": [5, 5, 5, 5], "conv_bias": false,"#
            + #" "head_hidden_size": null, "drop_path_rate": 0.2, "global_pool": "avg"}"#
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(try ConvNeXtSettings(timmKwargs: parsed),
                       ConvNeXtSettings(inChannels: 3, numClasses: 5, patchSize: 2, depths: [1, 2, 1, 1], dims: [8, 16, 24, 32],
                                        convMLP: true, layerScale: false, normEps: 1e-5, kernelSize: 5, convBias: false))
        XCTAssertTrue(refusal(base.merging(["head_hidden_size": 64]) { $1 }).contains("timm_kwargs.head_hidden_size"))
        XCTAssertTrue(refusal(base.merging(["use_grn": true]) { $1 }).contains("ConvNeXt-V2"))
        XCTAssertTrue(refusal(base.merging(["stem_type": "overlap"]) { $1 }).contains("timm_kwargs.stem_type"))
        XCTAssertTrue(refusal(base.merging(["kernel_sizes": [7, 7, 5, 5]]) { $1 }).contains("different kernel sizes"))
        XCTAssertTrue(refusal(base.merging(["dilation": 2]) { $1 }).contains("unsupported timm ConvNeXt argument"))
        XCTAssertThrowsError(try Architecture.parse(json: """
            {"family": "timm_convnext", "in_channels": 1, "num_classes": 10, "depths": [1, 1, 1], "dims": [8, 8, 8]}
            """)) { XCTAssertTrue("\($0)".contains("4 stages"), "\($0)") }
        XCTAssertThrowsError(try Architecture.parse(json: """
            {"family": "timm_convnext", "in_channels": 1, "num_classes": 10, "depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8], "patch_size": 8}
            """)) { XCTAssertTrue("\($0)".contains("patch_size"), "\($0)") }
        XCTAssertThrowsError(try Architecture.parse(json: """
            {"family": "timm_convnext", "in_channels": 1, "num_classes": 10, "depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8], "stem_width": 8}
            """)) { XCTAssertTrue("\($0)".contains("'stem_width': unknown field"), "\($0)") }
        // Batch-norm recalibration: nothing to re-estimate under layer norm.
        let checkpoint = try Self.load("patch1_linear_ls")
        let images = try goldenImages(try HDF5File.open(Fixtures.path("convnext/patch1_linear_ls.cases.h5")).root)
        XCTAssertThrowsError(try BatchNormRecalibration.recalibrate(checkpoint, gates: [1, 1, 1, 1, 1],
                                                                      source: BatchSource(images), batchSize: 4)) {
            XCTAssertTrue("\($0)".contains("does not apply") && "\($0)".contains("layer norm"), "\($0)")
        }
    }
}
