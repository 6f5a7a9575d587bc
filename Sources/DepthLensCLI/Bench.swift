import ArgumentParser
import DepthLens
import Foundation

/// Hidden: times the evaluator for tools/bench (not part of the user-facing CLI).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time forward passes and gate-configuration sweeps (used by tools/bench).",
        shouldDisplay: false)

    @Argument(help: "A DepthLens checkpoint.")
    var checkpoint: String

    @OptionGroup var architecture: ArchitectureOption

    @Option(help: "HDF5 file with a float32 `images` dataset (N, C, H, W), already normalised.")
    var data: String

    @Option(help: "Images per batch.")
    var batchSize = 256

    @Option(help: "Threads.")
    var threads = 2

    @Option(help: "Timed repetitions (the median is reported).")
    var repeats = 5

    @Option(help: "Images per repetition (whole batches; at least one batch).")
    var images = 512

    @Option(help: "reference or fast.")
    var backend = "fast"

    @Flag(help: "Also time the L + 1 single-block lesions (all on, and each block dropped) through the configurations API against independent passes, on one batch.")
    var lesions = false

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive.") }
        try RuntimeOptions.checkThreads(threads)
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1.") }
        guard images >= 1 else { throw ValidationError("--images must be at least 1.") }
        guard Evaluator.Backend(rawValue: backend) != nil else { throw ValidationError("--backend must be reference or fast.") }
    }

    func run() throws {
        guard let backend = Evaluator.Backend(rawValue: backend) else {
            throw ValidationError("--backend must be reference or fast.")
        }
        let dataset = try HDF5File.open(data).root.dataset("images")
        let shape = dataset.shape
        let count = min(batchSize, shape[0])
        // Only the rows of the one batch timed: the process's peak memory is the engine's.
        let batch = ImageBatch(count: count, channels: shape[1], height: shape[2], width: shape[3],
                               pixels: try dataset.readFloats(rows: 0..<count))
        let network = Network(checkpoint: try architecture.load(checkpoint))
        let evaluator = Evaluator(network: network, threads: threads, backend: backend)
        let batches = max(1, images / count)
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        _ = try evaluator.logits(batch)  // warm-up: primitives and weights
        var times: [Double] = []
        let cpuStart = Self.processCPUSeconds()
        for _ in 0..<repeats {
            times.append(try seconds { for _ in 0..<batches { _ = try evaluator.logits(batch) } })
        }
        let cpuPerImage = (Self.processCPUSeconds() - cpuStart) / Double(repeats * batches * count)
        var fields: [String] = [
            "\"backend\": \"\(backend.rawValue)\"", "\"batch\": \(count)", "\"threads\": \(threads)",
            "\"blocks\": \(network.blockCount)",
            "\"images_per_second\": \(Double(batches * count) / median(times))",
            "\"cpu_seconds_per_image\": \(cpuPerImage)",
            "\"runs\": [\(times.map { "\(Double(batches * count) / $0)" }.joined(separator: ", "))]",
        ]
        if lesions {
            let L = network.blockCount
            let configurations = [[Float](repeating: 1, count: L)] + (0..<L).map { l in
                var gates = [Float](repeating: 1, count: L)
                gates[l] = 0
                return gates
            }
            _ = try evaluator.logits(batch, configurations: Array(configurations.prefix(2)))
            var shared: [Double] = [], independent: [Double] = []
            for _ in 0..<max(1, repeats / 2) {
                shared.append(try seconds { _ = try evaluator.logits(batch, configurations: configurations) })
                independent.append(try seconds {
                    for gates in configurations { _ = try evaluator.logits(batch, gates: .shared(gates)) }
                })
            }
            fields.append("\"lesion_configurations\": \(configurations.count)")
            fields.append("\"lesions_shared_seconds\": \(median(shared))")
            fields.append("\"lesions_independent_seconds\": \(median(independent))")
        }
        // Peak resident memory (VmHWM, in kB) from the kernel's own account.
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Double($0) } } ?? 0
        fields.append("\"peak_rss_mib\": \(peak / 1024)")
        print("{" + fields.joined(separator: ", ") + "}")
    }

    /// CPU time of the process (all threads), which another process's load on the shared
    /// cores changes far less than the wall clock.
    static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
