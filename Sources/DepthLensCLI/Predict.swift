import ArgumentParser
import DepthLens
import Foundation

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write per-example logits and predicted classes for one gate configuration.",
        discussion: """
            Images come from HDF5 (float images are taken as the network's input as stored, already \
            normalised; integer images are 8-bit pixels and get the checkpoint's normalisation), IDX or CIFAR \
            files. The network is the deterministic one under the test-time rule the checkpoint records (expectation: \
            residual l scaled by p_l; inverted: identity; all blocks on when it records none), as `eval` and the \
            analyses use; --rule overrides it (with a warning), --gates replaces it, and --drop then zeroes blocks. \
            The rule used is printed on standard error. The output is CSV (example, label when known, predicted, logit_0...) or, for a path \
            ending in .h5, HDF5 datasets `logits` (N, classes), `predicted` (N) and `gates` (L).
            """)

    @Argument(help: "A DepthLens checkpoint (.h5, format v1), or with --arch a plain state_dict dump (.safetensors or HDF5).")
    var checkpoint: String

    @OptionGroup var architecture: ArchitectureOption

    @OptionGroup var dataOptions: DataOptions

    @OptionGroup var gates: GateOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(name: .shortAndLong, help: "Output file (.csv or .h5); CSV on standard output when omitted.")
    var output: String?

    func validate() throws {
        if let output, !(output.hasSuffix(".csv") || output.hasSuffix(".h5") || output.hasSuffix(".hdf5")) {
            throw ValidationError("--output must end in .csv, .h5 or .hdf5, found '\(output)'.")
        }
    }

    func run() throws {
        let ckpt = try architecture.load(checkpoint)
        let explicit = try gates.explicitGates() != nil
        let choice = RuleChoice(given: gates.rule, checkpoint: ckpt)
        let gateVector = try gates.resolve(for: ckpt, rule: choice.rule)
        let source = try dataOptions.open(for: ckpt)
        let evaluator = try runtime.evaluator(for: Network(checkpoint: ckpt))
        let classes = ckpt.architecture.numClasses
        var logits: [Float] = []
        var labels: [Int]? = []
        logits.reserveCapacity(source.count * classes)
        try BatchStream(source, batchSize: runtime.batchSize).logits(evaluator, gates: .shared(gateVector)) { batch, batchLogits in
            logits += batchLogits
            // Labels are optional here (unlabelled images can be predicted), so read per batch.
            if let batchLabels = try source.labels(batch.range) { labels? += batchLabels } else { labels = nil }
        }
        // Said once the logits are computed, so that an error stays the only line of a failed run.
        if explicit {
            FileHandle.standardError.write(Data("predict: rule: none (--gates gives every gate)\n".utf8))
        } else {
            choice.report(command: "predict", given: gates.rule != nil)
        }
        let predicted = (0..<source.count).map { n in
            (0..<classes).max { logits[n * classes + $0] < logits[n * classes + $1] } ?? 0
        }
        if let output, !output.hasSuffix(".csv") {
            try AtomicFile.write(to: output) { temporary in
                let root = try HDF5File.create(temporary).root
                try root.write(logits, shape: [source.count, classes], as: "logits")
                try root.write(predicted.map(Int64.init), shape: [source.count], as: "predicted")
                try root.write(gateVector, shape: [gateVector.count], as: "gates")
                try root.setAttribute("checkpoint", string: ckpt.path)
                try root.setAttribute("data", string: source.name)
            }
            return
        }
        var table = CSVTable(header: ["example"] + (labels != nil ? ["label"] : []) + ["predicted"]
            + (0..<classes).map { "logit_\($0)" })
        for n in 0..<source.count {
            table.append(["\(n)"] + (labels.map { ["\($0[n])"] } ?? []) + ["\(predicted[n])"]
                + (0..<classes).map { CSVTable.number(logits[n * classes + $0]) })
        }
        if let output {
            try AtomicFile.write(Data(table.text.utf8), to: output)
        } else {
            print(table.text, terminator: "")
        }
    }
}
