import Foundation
import XCTest
import DepthLens

/// timm and torchvision ResNets (tools/make_interop_golden.py): logits from the libraries'
/// own forward passes, matched by both engines under every gate pattern (max |logit
/// difference| <= 1e-4, same argmax); exported checkpoints and plain state_dict dumps;
/// the `--arch` presets against the real networks' key lists; errors that name the key;
/// batch-norm recalibration against the libraries' train-mode passes.
final class InteropGoldenTests: XCTestCase {
    static let models = ["timm_resnet18", "timm_resnet34", "timm_resnet50", "torchvision_resnet18", "torchvision_resnet50",
                         "timm_resnet18d", "timm_resnet26d"]

    /// The model's checkpoint: exported (`NAME.ckpt.h5`) or a plain dump read as the
    /// cases file's `arch` attribute says.
    static func load(_ model: String) throws -> Checkpoint {
        let arch = try HDF5File.open(Fixtures.path("interop/\(model).cases.h5")).root.attribute("arch").string ?? ""
        if arch.isEmpty { return try Checkpoint.load(from: Fixtures.path("interop/\(model).ckpt.h5")) }
        return try Checkpoint.load(from: Fixtures.path("interop/\(model).dump.h5"), preset: try ArchitecturePreset.named(arch))
    }

    func testBothEnginesMatchTimmAndTorchvisionUnderEveryGatePattern() throws {
        XCTAssertTrue(Evaluator.isFastEngineAvailable)
        var checked = 0
        var report: [String] = []
        for model in Self.models {
            let checkpoint = try Self.load(model)
            XCTAssertTrue(checkpoint.architecture.isImageNetFamily, model)
            let network = Network(checkpoint: checkpoint)
            let cases = try HDF5File.open(Fixtures.path("interop/\(model).cases.h5")).root
            let images = try cases.dataset("images")
            let s = images.shape
            let batch = ImageBatch(count: s[0], channels: s[1], height: s[2], width: s[3], pixels: try images.readFloats())
            let group = try cases.group("cases")
            let names = try group.memberNames()
            XCTAssertGreaterThanOrEqual(names.count, 9, model)
            for backend in [Evaluator.Backend.reference, .fast] {
                var worst: Float = 0
                for threads in [1, 2] {
                    let evaluator = Evaluator(network: network, threads: threads, backend: backend)
                    for name in names {
                        let golden = try group.group(name)
                        let expected = try golden.dataset("logits").readFloats()
                        let gates = try goldenGates(golden)
                        let logits = try evaluator.logits(batch, gates: gates)
                        assertLogits(logits, match: expected, classes: checkpoint.architecture.numClasses,
                                     "\(model)/\(backend)/\(name)/threads \(threads)")
                        worst = max(worst, zip(logits.scalars, expected).map { abs($0 - $1) }.max() ?? 0)
                        checked += 1
                    }
                }
                report.append("\(model) \(backend): max |logit difference| \(worst)")
            }
            // The configurations API (prefix sharing) on the same gate vectors.
            let shared = try names.compactMap { name -> (String, [Float])? in
                let golden = try group.group(name)
                guard golden.contains("gates"), try golden.dataset("gates").shape.count == 1 else { return nil }
                return (name, try golden.dataset("gates").readFloats())
            }
            let all = try Evaluator(network: network, threads: 2, backend: .fast).logits(batch, configurations: shared.map(\.1))
            for (i, (name, _)) in shared.enumerated() {
                assertLogits(all[i], match: try group.group(name).dataset("logits").readFloats(),
                             classes: checkpoint.architecture.numClasses, "\(model)/configurations/\(name)")
            }
        }
        print(report.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(checked, 250)
    }

    func testExportedCheckpointRecordsTimmsDropPathAndGlobalBlockNumbers() throws {
        let checkpoint = try Checkpoint.load(from: Fixtures.path("interop/timm_resnet18.ckpt.h5"))
        let training = try XCTUnwrap(checkpoint.training)
        XCTAssertEqual(training.schedule?.name, "linear-from-zero")
        XCTAssertEqual(training.schedule?.params["r"], 0.1)
        XCTAssertEqual(training.testTimeRule, .inverted)
        XCTAssertEqual(training.gateGranularity, .sample)
        // timm: block_dpr = drop_path_rate * net_block_idx / (net_num_blocks - 1), counted across stages.
        let p = try XCTUnwrap(training.survivalProbabilities)
        XCTAssertEqual(p.count, 8)
        for (l, value) in p.enumerated() { XCTAssertEqual(value, 1 - 0.1 * Double(l) / 7, accuracy: 1e-12) }
        let blocks = checkpoint.architecture.blocks
        XCTAssertEqual(blocks.map(\.keyPrefix), ["layer1.0.", "layer1.1.", "layer2.0.", "layer2.1.",
                                                 "layer3.0.", "layer3.1.", "layer4.0.", "layer4.1."])
        XCTAssertEqual(blocks.map(\.index), Array(1...8))
        // timm's plain stem is 64 wide whatever the stage widths, so layer1.0 (64 -> 16) projects too.
        XCTAssertEqual(blocks.map(\.shortcut), [.projection, .identity, .projection, .identity,
                                                .projection, .identity, .projection, .identity])
        let bottleneck = try Checkpoint.load(from: Fixtures.path("interop/timm_resnet50.ckpt.h5")).architecture
        XCTAssertEqual(bottleneck.block, .bottleneck)
        XCTAssertEqual(bottleneck.blocks.first?.shortcut, .projection, "layer1.0 widens 64 -> 16 = 4 x 4 channels")
        XCTAssertEqual(bottleneck.featureWidth, 128)
    }

    func testEveryPresetNamesEveryTensorOfTheRealNetwork() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("interop/layouts.json")))
        let layouts = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: [[Any]]])
        // The ResNet presets; ConvNeXt's are checked in ConvNeXtGoldenTests, the vision transformers' in VisionTransformerTests.
        let resNets = ArchitecturePreset.all.filter { $0.family == Architecture.imageNetFamily }
        XCTAssertEqual(Set(layouts.keys), Set(resNets.map(\.name)))
        for preset in resNets {
            let entries = try XCTUnwrap(layouts[preset.name], preset.name)
            var shapes: [String: [Int]] = [:]
            for entry in entries { shapes[entry[0] as! String] = (entry[1] as! [Int]) }
            let architecture = try preset.architecture { shapes[$0] }
            XCTAssertEqual(architecture.numClasses, 1000)
            XCTAssertEqual(architecture.stages.map(\.width), [64, 128, 256, 512], preset.name)
            XCTAssertEqual(architecture.stemOutputWidth, 64, preset.name)
            XCTAssertEqual(architecture.hasDeepStem, preset.name.hasSuffix("d"), preset.name)
            let expected = Dictionary(uniqueKeysWithValues: architecture.expectedTensors.map { ($0.key, $0.shape) })
            let real = shapes.filter { !$0.key.hasSuffix("num_batches_tracked") }
            XCTAssertEqual(Set(expected.keys), Set(real.keys), preset.name)
            for (key, shape) in real { XCTAssertEqual(expected[key], shape, "\(preset.name): \(key)") }
        }
    }

    func testPlainDumpErrorsNameTheKeyAndBothShapes() throws {
        let directory = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = Fixtures.path("interop/torchvision_resnet18.dump.h5")
        let preset = try ArchitecturePreset.named("timm/resnet18")
        func expectError(_ name: String, preset: ArchitecturePreset, _ fragments: [String],
                         change: (inout [String: (shape: [Int], values: [Float])]) -> Void) throws {
            let path = directory.appendingPathComponent(name).path
            try Self.rewriteDump(source, to: path, change: change)
            XCTAssertThrowsError(try Checkpoint.load(from: path, preset: preset), name) { error in
                for fragment in fragments { XCTAssertTrue("\(error)".contains(fragment), "\(name): \(error)") }
            }
        }
        try expectError("missing.h5", preset: preset, ["layer3.1.bn2.running_var", "missing tensor"]) {
            $0["layer3.1.bn2.running_var"] = nil
        }
        try expectError("unused.h5", preset: preset, ["layer2.0.se.fc1.weight", "unused tensor"]) {
            $0["layer2.0.se.fc1.weight"] = ([2, 2], [0, 0, 0, 0])
        }
        try expectError("shape.h5", preset: preset, ["layer2.1.conv1.weight", "[16, 16, 3, 1]", "[16, 16, 3, 3]"]) {
            $0["layer2.1.conv1.weight"] = ([16, 16, 3, 1], [Float](repeating: 0, count: 16 * 16 * 3))
        }
        try expectError("nan.h5", preset: preset, ["fc.bias", "finite"]) {
            $0["fc.bias"]!.values[3] = .nan
        }
        try expectError("deep-stem.h5", preset: preset, ["conv1.weight", "missing tensor", "a deep stem, such as timm/resnet18d"]) {
            $0["conv1.0.weight"] = $0["conv1.weight"]
            $0["conv1.weight"] = nil
        }
        // The wrong preset: resnet50 wants bottlenecks, the file has basic blocks.
        try expectError("wrong-arch.h5", preset: try ArchitecturePreset.named("torchvision/resnet50"), ["layer1.0.conv3.weight", "missing tensor"]) { _ in }
        XCTAssertThrowsError(try ArchitecturePreset.named("timm/resnet51")) { XCTAssertTrue("\($0)".contains("timm/resnet50"), "\($0)") }
        XCTAssertThrowsError(try Checkpoint.load(from: Fixtures.path("interop/timm_resnet18.ckpt.h5"), preset: preset)) {
            XCTAssertTrue("\($0)".contains("records its own architecture"), "\($0)")
            XCTAssertFalse("\($0)".contains("--"), "a flag name in a library error: \($0)")
        }
        XCTAssertThrowsError(try Checkpoint.load(from: source)) {
            XCTAssertTrue("\($0)".contains("architecture preset, such as timm/resnet18"), "\($0)")
            XCTAssertFalse("\($0)".contains("--"), "a flag name in a library error: \($0)")
        }
    }

    func testRecalibrationMatchesTrainModePassesOfTheLibraries() throws {
        for model in ["timm_resnet50", "torchvision_resnet18", "timm_resnet18d"] {
            let path = Fixtures.path("interop/\(model).cases.h5")
            let group = try HDF5File.open(path).root.group("recalibration")
            let checkpoint = try Self.load(model)
            let train = try HDF5ImageSource(path: path, imagesDataset: "recalibration/train_images", labelsDataset: nil)
            let gates = try group.dataset("gates").readFloats()
            let recalibrated = try BatchNormRecalibration.recalibrate(checkpoint, gates: gates, source: train, batchSize: 4)
            let test = try HDF5ImageSource(path: path, imagesDataset: "images", labelsDataset: nil)
            let batch = try test.batch(0..<test.count)
            let expected = try group.dataset("logits").readFloats()
            for backend in [Evaluator.Backend.reference, .fast] {
                let logits = try Evaluator(network: Network(checkpoint: recalibrated), backend: backend).logits(batch, gates: .shared(gates))
                assertLogits(logits, match: expected, classes: 10, "\(model)/recalibrated/\(backend)")
                print("\(model) recalibrated \(backend): max |logit difference| \(zip(logits.scalars, expected).map { abs($0 - $1) }.max() ?? 0)")
            }
            // The statistics really moved.
            let before = try Evaluator(network: Network(checkpoint: checkpoint)).logits(batch, gates: .shared(gates))
            XCTAssertGreaterThan(zip(before.scalars, expected).map { abs($0 - $1) }.max()!, 1e-2, model)
        }
    }

    /// Copies a plain dump's float tensors (counters left out), changed by `change`.
    static func rewriteDump(_ source: String, to path: String,
                            change: (inout [String: (shape: [Int], values: [Float])]) -> Void) throws {
        let root = try HDF5File.open(source).root
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for name in try root.memberNames() where !name.hasSuffix("num_batches_tracked") {
            let dataset = try root.dataset(name)
            tensors[name] = (dataset.shape, try dataset.readFloats())
        }
        change(&tensors)
        let file = try HDF5File.create(path)
        let out = try file.root
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            try out.write(tensor.values, shape: tensor.shape, as: name)
        }
        try out.write([Int64(7)], shape: [1], as: "bn1.num_batches_tracked")
    }
}
