import ArgumentParser
import DepthLens
import DepthLensMetrics
import DepthLensSchedules
import Foundation

/// Entry point of a `depthlens` executable.
public enum DepthLensMain {
    /// Registers the built-in schedules and metrics, then whatever `register` adds (a
    /// package's own plugins), and runs the command line on the process arguments.
    public static func run(registering register: (PluginRegistry) -> Void = { _ in }) -> Never {
        let root = command(registering: register)
        HDF5CrashNote.install()
        // Large buffers (weights, images, activations) straight from and back to the kernel:
        // glibc otherwise raises its mmap threshold to the size of the first large block
        // freed (up to 32 MiB), and the checkpoint's tensors, freed once the network is
        // built, stayed in the heap (ResNet-50 at 224 x 224, batch 16: 303 MiB peak, 275
        // with a fixed threshold; docs/performance.md).
        // (malloc.h is not in Swift's Glibc module: mallopt is looked up; M_MMAP_THRESHOLD is -3.)
        if let symbol = dlsym(nil, "mallopt") {
            _ = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)(-3, 128 << 10)
        }
        OneLineErrors.main(root)
        exit(0)
    }

    /// The root command (`depthlens`), after registering the built-in schedules and
    /// metrics and whatever `register` adds: to parse a command line without running it,
    /// as swift-argument-parser's own tests do (`parseAsRoot`, `message(for:)`,
    /// `exitCode(for:)`, `helpMessage(for:)`; the subcommands are in
    /// `configuration.subcommands`).
    public static func command(registering register: (PluginRegistry) -> Void = { _ in }) -> any ParsableCommand.Type {
        BuiltinSchedules.register(in: .shared)
        BuiltinMetrics.register(in: .shared)
        register(.shared)
        return DepthLensCommand.self
    }
}

struct DepthLensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depthlens",
        abstract: "Study trained residual networks as implicit ensembles of networks of different depths.",
        discussion: """
            Blocks are numbered 1...L in forward order across all stages. Checkpoints are HDF5 files in \
            DepthLens format v1 (docs/checkpoint-format.md); tools/export_pytorch.py writes them from PyTorch.

            Environment: DEPTHLENS_BACKEND=reference runs every evaluation (analyses included) on the \
            plain Swift reference engine instead of the fast oneDNN one; fast is the default, and any \
            other value is refused (docs/performance.md).
            """,
        version: "0.1.0",
        subcommands: [Inspect.self, Eval.self, Predict.self, Sample.self, Ensemble.self, Lesion.self, Depth.self, Reorder.self, Paths.self, Report.self, Compare.self, Merge.self, Slurm.self, ScheduleCommand.self, PluginsCommand.self, Bench.self]
    )
}
