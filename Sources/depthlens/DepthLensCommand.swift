import ArgumentParser
import DepthLens

@main
struct DepthLensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depthlens",
        abstract: "Study trained residual networks as implicit ensembles of networks of different depths.",
        discussion: """
            Blocks are numbered 1...L in forward order across all stages. Checkpoints are HDF5 files in \
            DepthLens format v1 (docs/checkpoint-format.md); tools/export_pytorch.py writes them from PyTorch.
            """,
        version: "0.1.0",
        subcommands: [Inspect.self, Eval.self, Predict.self]
    )
}
