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

    @Option(name: .customLong("gates-file"), help: ArgumentHelp("Per-example gates: one gate vector per image, in the order of the images used (after --offset and --limit): a CSV file (one row of L numbers per image, an optional header row) or an HDF5 file with a dataset `gates` of shape (N, L). Not with --gates or --rule; --drop then zeroes the blocks it names for every image.", valueName: "path"))
    var gatesFile: String?

    @Option(name: .shortAndLong, help: "Output file (.csv or .h5); CSV on standard output when omitted.")
    var output: String?

    func validate() throws {
        if gatesFile != nil && (gates.gates != nil || gates.rule != nil) {
            throw ValidationError("Give --gates-file, or --gates or --rule, not both.")
        }
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
        let perExample = try gatesFile.map { try readGatesFile($0, images: source.count, blocks: ckpt.blockCount, drop: try gates.dropList()) }
        let evaluator = try runtime.evaluator(for: Network(checkpoint: ckpt))
        let classes = ckpt.architecture.numClasses
        var logits: [Float] = []
        var labels: [Int]? = []
        logits.reserveCapacity(source.count * classes)
        try BatchStream(source, batchSize: runtime.batchSize).forEach { batch in
            let batchGates: Gates = perExample.map { .perExample(Array($0[batch.range])) } ?? .shared(gateVector)
            logits += try evaluator.logits(try batch.images(), gates: batchGates).scalars
            // Labels are optional here (unlabelled images can be predicted), so read per batch.
            if let batchLabels = try source.labels(batch.range) { labels? += batchLabels } else { labels = nil }
        }
        // Said once the logits are computed, so that an error stays the only line of a failed run.
        if gatesFile != nil {
            FileHandle.standardError.write(Data("predict: rule: none (--gates-file gives every image's gates)\n".utf8))
        } else if explicit {
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
                if let perExample {
                    try root.write(perExample.flatMap { $0 }, shape: [source.count, ckpt.blockCount], as: "gates")
                } else {
                    try root.write(gateVector, shape: [gateVector.count], as: "gates")
                }
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

/// The gate vectors of `--gates-file`: one per image, each of `blocks` finite numbers, with
/// the blocks of `drop` (1-based) set to 0.
func readGatesFile(_ path: String, images: Int, blocks: Int, drop: [Int]) throws -> [[Float]] {
    func fail(_ message: String) -> CLIError { CLIError("--gates-file: \(path): \(message)") }
    var rows: [[Float]] = []
    if path.hasSuffix(".h5") || path.hasSuffix(".hdf5") {
        let dataset = try HDF5File.open(path).root.dataset("gates")
        guard dataset.shape.count == 2, dataset.shape[1] == blocks else {
            throw fail("/gates has shape \(dataset.shape); expected (images, \(blocks))")
        }
        let values = try dataset.readFloats()
        rows = (0..<dataset.shape[0]).map { Array(values[$0 * blocks..<($0 + 1) * blocks]) }
    } else {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw fail("cannot be read as UTF-8 text") }
        let lines = text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline)
        for (index, line) in lines.enumerated() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            // A first row that is not all numbers is a header.
            if index == 0 && fields.contains(where: { Float($0) == nil }) { continue }
            guard fields.count == blocks else {
                throw fail("line \(index + 1) has \(fields.count) entries but the network has \(blocks) blocks")
            }
            rows.append(try fields.enumerated().map { column, field in
                guard let value = Float(field) else { throw fail("line \(index + 1), entry \(column + 1) ('\(field)') is not a number") }
                return value
            })
        }
    }
    guard rows.count == images else {
        throw fail("has \(rows.count) gate vector(s) but the data has \(images) image(s); give one per image")
    }
    for (n, row) in rows.enumerated() {
        if let bad = row.firstIndex(where: { !$0.isFinite }) {
            throw fail("image \(n): gate of block \(bad + 1) is \(row[bad]); gates must be finite")
        }
    }
    if let bad = drop.first(where: { !(1...blocks).contains($0) }) {
        throw CLIError("--drop: \(BlockSelectionError.noSuchBlock(bad, blockCount: blocks))")
    }
    return rows.map { row in
        var row = row
        for block in drop { row[block - 1] = 0 }
        return row
    }
}
