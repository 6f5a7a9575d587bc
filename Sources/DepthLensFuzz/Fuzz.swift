import DepthLens
import DepthLensSchedules
import Foundation

/// A libFuzzer target over everything that reads a user's file: the checkpoint loader
/// (DepthLens checkpoints, safetensors files that record their architecture, and
/// safetensors files read with a ResNet, ConvNeXt or vision transformer preset),
/// the three data-set readers (HDF5 images, IDX, CIFAR binary), the format sniffing in
/// front of them, custom schedule files (CSV and JSON), and progress journals (resumed). Each input is written to a temporary file and opened by each reader;
/// any error is fine, a crash (or a sanitizer report) is a finding.
///
/// Built for fuzzing (docs/reliability.md):
///
///     swift build -c debug --product depthlens-fuzz -Xswiftc -sanitize=fuzzer,address \
///         -Xswiftc -DDEPTHLENS_FUZZING --build-path .build-fuzz
///
/// Built normally (no flags) it is a replayer: `depthlens-fuzz FILE...` runs the same
/// code on each file and prints what each reader said, to reproduce a finding without
/// the fuzzing build.
enum FuzzHarness {
    static let scratch: String = {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("depthlens-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder.path
    }()

    static let schedules: PluginRegistry = {
        let registry = PluginRegistry()
        BuiltinSchedules.register(in: registry)
        return registry
    }()

    /// A two-block network, for schedule files.
    static let architecture = try! Architecture.parse(json: """
        {"family": "cifar_resnet", "block": "basic", "shortcut": "A_avgpool", "stem_width": 2, "in_channels": 1,
         "num_classes": 3, "stages": [{"blocks": 1, "width": 2, "stride": 1}, {"blocks": 1, "width": 4, "stride": 2}]}
        """)

    /// Runs every reader on `bytes`; returns one line per reader.
    static func run(_ bytes: UnsafeBufferPointer<UInt8>) -> [String] {
        let path = scratch + "/input"
        let data = Data(buffer: bytes)
        guard FileManager.default.createFile(atPath: path, contents: data) else { return ["cannot write \(path)"] }
        var report: [String] = []
        func attempt(_ name: String, _ body: () throws -> String) {
            do { report.append("\(name): ok \(try body())") } catch { report.append("\(name): \(error)") }
        }
        attempt("checkpoint") {
            let checkpoint = try Checkpoint.load(from: path)
            _ = Network(checkpoint: checkpoint)
            return "\(checkpoint.blockCount) blocks"
        }
        attempt("safetensors") {
            let file = try SafetensorsFile.open(path)
            let values = try file.names.filter { file.entries[$0]!.dtype.isReadableAsFloat }.reduce(0) { $0 + (try file.readFloats($1).count) }
            return "\(file.names.count) tensors, \(values) values"
        }
        attempt("safetensors checkpoint") {
            // Read as a dump of the smallest preset; content sniffing picks the reader.
            let checkpoint = try Checkpoint.load(from: path, preset: try ArchitecturePreset.named("timm/resnet18"))
            _ = Network(checkpoint: checkpoint)
            return "\(checkpoint.blockCount) blocks"
        }
        attempt("safetensors convnext") {
            // The ConvNeXt preset reader; the plain "checkpoint" attempt above already reads a
            // safetensors file's recorded architecture (depthlens_architecture metadata).
            let checkpoint = try Checkpoint.load(from: path, preset: try ArchitecturePreset.named("timm/convnext_atto"))
            _ = Network(checkpoint: checkpoint)
            return "\(checkpoint.blockCount) blocks"
        }
        attempt("safetensors vit") {
            // The vision transformer preset reader (widths and depth from the tensors, heads
            // and pooling from the preset).
            let checkpoint = try Checkpoint.load(from: path, preset: try ArchitecturePreset.named("timm/vit_tiny_patch16_224"))
            _ = Network(checkpoint: checkpoint)
            return "\(checkpoint.blockCount) blocks"
        }
        attempt("format") { "\(try DataSetRequest.format(of: path))" }
        attempt("hdf5 images") {
            let source = try HDF5ImageSource(path: path)
            return try readSome(source)
        }
        attempt("idx") {
            let source = try IDXImageSource(imagesPath: path, labelsPath: nil)
            return try readSome(source)
        }
        attempt("idx labels") {
            // The same bytes as an images file and as its labels file.
            let source = try IDXImageSource(imagesPath: path, labelsPath: path)
            return try readSome(source)
        }
        attempt("cifar") {
            let source = try CIFARBinarySource(paths: [path])
            return try readSome(source)
        }
        attempt("schedule csv") { "\(try schedules.survivalProbabilities("custom:file=\(path)", for: architecture))" }
        attempt("schedule json") {
            let json = scratch + "/input.json"
            guard FileManager.default.createFile(atPath: json, contents: data) else { return "cannot write \(json)" }
            return "\(try schedules.survivalProbabilities("custom:file=\(json)", for: architecture))"
        }
        // A progress journal, resumed: its header parsed against a configuration, its
        // records scanned and checked (a resume truncates a torn tail, so on a copy).
        attempt("journal") {
            let journal = scratch + "/input.journal"
            guard FileManager.default.createFile(atPath: journal, contents: data) else { return "cannot write \(journal)" }
            let configuration = ProgressJournal.recordedConfiguration(at: journal) ?? [("analysis", "sample")]
            let resumed = try ProgressJournal(path: journal, configuration: configuration, resume: true)
            return "\(resumed.resumedUnits) unit(s), \(resumed.damagedUnits) damaged"
        }
        return report
    }

    /// Reads the first and last two images and their labels.
    static func readSome(_ source: any ImageSource) throws -> String {
        guard source.count > 0 else { return "no images" }
        let first = 0..<min(2, source.count)
        let last = max(0, source.count - 2)..<source.count
        let pixels = try source.pixels(first).count + source.pixels(last).count
        let labels = try (source.labels(first)?.count ?? 0) + (source.labels(last)?.count ?? 0)
        return "\(source.count) images, read \(pixels) values and \(labels) labels"
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    _ = FuzzHarness.run(UnsafeBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if DEPTHLENS_FUZZING
// SwiftPM links an executable with `main` aliased to `<module>_main`; in the fuzzing build
// that entry point hands over to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@_cdecl("DepthLensFuzz_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { fuzzOneInput($0, $1) }
}
#else
@main
struct Replay {
    static func main() throws {
        let files = CommandLine.arguments.dropFirst()
        if files.isEmpty {
            print("usage: depthlens-fuzz FILE...  (replays fuzzer inputs; see docs/reliability.md for the fuzzing build)")
            return
        }
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            print("== \(file) (\(data.count) bytes)")
            let lines = data.withUnsafeBytes { FuzzHarness.run($0.bindMemory(to: UInt8.self)) }
            for line in lines { print("  " + line) }
        }
        try? FileManager.default.removeItem(atPath: FuzzHarness.scratch)
    }
}
#endif
