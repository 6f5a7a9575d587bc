import DepthLens
import XCTest

/// timm and torchvision ResNets on the command line: plain state_dict dumps read with
/// `--arch`, checkpoints written by the exporter, and the errors a wrong file gives.
final class InteropCLITests: XCTestCase {
    static let dump = CLI.fixture("interop/torchvision_resnet18.dump.h5")
    static let data = CLI.fixture("interop/data64.h5")

    func testInspectReadsAPlainDumpAsTheNamedArchitecture() throws {
        let result = try CLI.run(["inspect", Self.dump, "--arch", "timm/resnet18"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for line in ["(plain state_dict dump read as timm/resnet18)", "imagenet_resnet, basic (post-activation) blocks, 8 blocks in 4 stages",
                     "7x7/2 stem convolution of width 8, 3x3/2 max pooling; 10 classes",
                     "3   2      layer2.0      8->16      2       option B", "layer4.0.downsample.0.weight", "(64, 32, 1, 1)"] {
            XCTAssertTrue(result.stdout.contains(line), "missing '\(line)' in:\n\(result.stdout)")
        }
    }

    func testInspectReadsADeepStemDump() throws {
        let result = try CLI.run(["inspect", CLI.fixture("interop/timm_resnet18d.dump.h5"), "--arch", "timm/resnet18d"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for line in ["deep stem (3x3 convolutions of width 8, 8, 16), 3x3/2 max pooling",
                     "option B (2x2 average pooling with the stride, 1x1 convolution + batch norm)",
                     "conv1.6.weight", "layer3.0.downsample.2.running_var"] {
            XCTAssertTrue(result.stdout.contains(line), "missing '\(line)' in:\n\(result.stdout)")
        }
        let wrong = try CLI.run(["inspect", CLI.fixture("interop/timm_resnet18d.dump.h5"), "--arch", "timm/resnet18"])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("conv1.weight: missing tensor; timm/resnet18 reads the input channels and stem width from it (the file has conv1.0.weight: a deep stem, such as timm/resnet18d)"), wrong.stderr)
    }

    func testInspectShowsAnExportedCheckpointsDropPathTraining() throws {
        let result = try CLI.run(["inspect", CLI.fixture("interop/timm_resnet50.ckpt.h5"), "--no-tensors"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for line in ["bottleneck (1x1, 3x3, 1x1; expansion 4) blocks, 16 blocks in 4 stages", "width 4 (output 16)",
                     "schedule: linear-from-zero:r=0.1", "gates during training: per sample", "test-time rule: inverted",
                     "16  4      layer4.2      128->128   1       identity  0.9000"] {
            XCTAssertTrue(result.stdout.contains(line), "missing '\(line)' in:\n\(result.stdout)")
        }
    }

    func testPredictOnADumpAndOnACheckpointGivesTheLibrariesLogits() throws {
        for (file, arch, flags, name) in [
            (Self.dump, ["--arch", "torchvision/resnet18"], ["--drop", "3"], "torchvision_resnet18"),
            (CLI.fixture("interop/timm_resnet34.ckpt.h5"), [], ["--drop", "8"], "timm_resnet34"),
        ] {
            let cases = CLI.fixture("interop/\(name).cases.h5")
            let result = try CLI.run(["predict", file] + arch + ["--data", cases, "--batch-size", "3"] + flags)
            XCTAssertEqual(result.status, 0, result.stderr)
            let lines = result.stdout.split(separator: "\n")
            XCTAssertEqual(lines.count, 5, result.stdout)
            let block = flags[1]
            let expected = try HDF5File.open(cases).root.group("cases").group("downsampling-block-\(block)-off")
                .dataset("logits").readFloats()
            let logits = lines.dropFirst().flatMap { $0.split(separator: ",").dropFirst(2).map { Float(String($0))! } }
            XCTAssertEqual(logits.count, expected.count)
            XCTAssertLessThanOrEqual(zip(logits, expected).map { abs($0 - $1) }.max() ?? 1, 1e-4, name)
        }
    }

    func testAnalysesRunOnADumpAndOnAnExportedCheckpoint() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        // (output folder, arguments): the folder's CSV is named after the command.
        let runs: [(String, [String])] = [
            ("lesion", ["lesion", Self.dump, "--arch", "timm/resnet18", "--schedule", "linear-from-zero:r=0.1", "--rule", "inverted"]),
            ("sample", ["sample", CLI.fixture("interop/timm_resnet50.ckpt.h5"), "--members", "3"]),
            ("", ["eval", Self.dump, "--arch", "torchvision/resnet18"]),
            ("recalibrated", ["lesion", CLI.fixture("interop/timm_resnet18.ckpt.h5"), "--drop", "2,5", "--recalibrate", "8",
                              "--recalibration-data", Self.data]),
        ]
        for (name, arguments) in runs {
            let output = name.isEmpty ? [] : ["-o", folder.appendingPathComponent(name).path, "--quiet"]
            let result = try CLI.run(arguments + ["--data", Self.data, "--batch-size", "5"] + output)
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            if name.isEmpty {
                XCTAssertTrue(result.stdout.contains("(12 images)"), result.stdout)
            } else {
                let csv = folder.appendingPathComponent(name).appendingPathComponent("\(arguments[0])-results.csv").path
                XCTAssertTrue(FileManager.default.fileExists(atPath: csv), "\(name): no \(csv)")
            }
        }
    }

    /// A .safetensors file needs no Python: `eval` and `predict` read it with `--arch`, and
    /// give what the HDF5 dump of the same weights gives.
    func testEvalAndPredictReadASafetensorsFileAsTheHDF5DumpOfTheSameWeights() throws {
        let safetensors = CLI.fixture("interop/timm_resnet18d.safetensors")
        let dump = CLI.fixture("interop/timm_resnet18d.dump.h5")
        let arch = ["--arch", "timm/resnet18d"]
        let eval = try CLI.run(["eval", safetensors] + arch + ["--data", Self.data, "--batch-size", "5"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("(12 images)"), eval.stdout)
        let evalDump = try CLI.run(["eval", dump] + arch + ["--data", Self.data, "--batch-size", "5"])
        XCTAssertEqual(evalDump.status, 0, evalDump.stderr)
        // Accuracy, NLL and the per-class table (every line but the file name and the time).
        func table(_ text: String) -> [Substring] { text.split(separator: "\n").filter { !$0.hasPrefix("Checkpoint") && !$0.hasPrefix("Time") } }
        XCTAssertEqual(table(eval.stdout), table(evalDump.stdout))
        XCTAssertGreaterThanOrEqual(table(eval.stdout).count, 15, eval.stdout)

        let cases = CLI.fixture("interop/timm_resnet18d.cases.h5")
        let predict = try CLI.run(["predict", safetensors] + arch + ["--data", cases, "--drop", "3"])
        XCTAssertEqual(predict.status, 0, predict.stderr)
        let expected = try HDF5File.open(cases).root.group("cases").group("downsampling-block-3-off").dataset("logits").readFloats()
        let logits = predict.stdout.split(separator: "\n").dropFirst().flatMap { $0.split(separator: ",").dropFirst(2).map { Float(String($0))! } }
        XCTAssertEqual(logits.count, expected.count)
        XCTAssertLessThanOrEqual(zip(logits, expected).map { abs($0 - $1) }.max() ?? 1, 1e-4)

        let inspect = try CLI.run(["inspect", CLI.fixture("interop/timm_resnet18d.bf16.safetensors")] + arch)
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("(plain state_dict dump read as timm/resnet18d)"), inspect.stdout)
        let noArch = try CLI.run(["eval", safetensors, "--data", Self.data])
        XCTAssertEqual(noArch.status, 1)
        XCTAssertTrue(noArch.stderr.contains("records no DepthLens architecture; name it with --arch"), noArch.stderr)
    }

    func testBadDumpsAndArchitecturesFailNamingTheKey() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        // A dump that lacks one running mean and has a stray tensor.
        let broken = folder.appendingPathComponent("broken.h5").path
        do {
            let source = try HDF5File.open(Self.dump).root
            let file = try HDF5File.create(broken)
            let out = try file.root
            for name in try source.memberNames() where name != "layer2.1.bn1.running_mean" && !name.hasSuffix("num_batches_tracked") {
                let dataset = try source.dataset(name)
                try out.write(try dataset.readFloats(), shape: dataset.shape, as: name)
            }
        }
        let checks: [([String], Int32, [String])] = [
            (["inspect", broken, "--arch", "timm/resnet18"], 1, ["\(broken): layer2.1.bn1.running_mean: missing tensor"]),
            (["inspect", Self.dump, "--arch", "timm/resnet50"], 1, ["layer1.0.conv3.weight: missing tensor"]),
            (["predict", Self.dump, "--data", Self.data], 1, ["@format_version", "--arch timm/resnet18"]),
            (["inspect", Self.dump, "--arch", "timm/resnet19"], 64, ["unknown architecture 'timm/resnet19'", "torchvision/resnet50"]),
            (["inspect", CLI.fixture("interop/timm_resnet18.ckpt.h5"), "--arch", "timm/resnet18"], 1, ["records its own architecture"]),
        ]
        for (arguments, status, fragments) in checks {
            let result = try CLI.run(arguments)
            XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)")
            for fragment in fragments {
                XCTAssertTrue(result.stderr.contains(fragment), "\(arguments): missing '\(fragment)' in \(result.stderr)")
            }
        }
    }
}
