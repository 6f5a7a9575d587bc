import ArgumentParser
import DepthLens
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accuracy, NLL and a per-class table of a checkpoint's deterministic network on a labelled data set.",
        discussion: """
            The test-time rule defaults to the one the checkpoint records (expectation: residuals scaled by \
            p_l; inverted: identity), and the data to the installed test set of the data set it records \
            (Fashion-MNIST: /usr/share/datasets/fashion-mnist, from Debian's dataset-fashion-mnist).
            """)

    @Argument(help: "A DepthLens checkpoint (.h5, format v1), or with --arch a plain state_dict dump (.safetensors or HDF5).")
    var checkpoint: String

    @OptionGroup var architecture: ArchitectureOption

    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Test-time rule (default: the checkpoint's; all blocks on when it records none). Overriding the recorded rule prints a warning.")
    var rule: TrainingMetadata.TestTimeRule?

    @OptionGroup var runtime: RuntimeOptions

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Flag(help: "No progress line.")
    var quiet = false

    func run() throws {
        let ckpt = try architecture.load(checkpoint)
        let choice = RuleChoice(given: rule, checkpoint: ckpt)
        let chosenRule = choice.rule
        let gates = try GateConfiguration(rule: chosenRule).resolve(for: ckpt)
        let source = try dataOptions.open(for: ckpt)
        let evaluator = try runtime.evaluator(for: Network(checkpoint: ckpt))
        let progress = ProgressLine("eval", quiet: quiet)
        let started = Date()
        let (summary, _) = try DataSetEvaluation.run(evaluator, on: source, gates: .shared(gates),
                                                    batchSize: runtime.batchSize) { progress.update(done: $0, total: $1) }
        progress.finish()
        choice.report(command: "eval", given: rule != nil)
        let seconds = Date().timeIntervalSince(started)
        let names = ckpt.training?.classNames ?? (0..<ckpt.architecture.numClasses).map { "class \($0)" }
        let ruleName = choice.name
        if json {
            let object: [String: Any] = [
                "checkpoint": ckpt.path, "data": source.name, "rule": ruleName, "images": summary.count,
                "correct": summary.correct, "accuracy": summary.accuracy, "nll": summary.negativeLogLikelihood,
                "seconds": seconds,
                "per_class": summary.perClass.enumerated().map { index, tally in
                    ["class": index, "name": names[index], "support": tally.support, "correct": tally.correct,
                     "predicted": tally.predicted, "accuracy": tally.support == 0 ? NSNull() : tally.accuracy as Any]
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("Checkpoint  \(ckpt.path)")
        print("Data        \(source.name) (\(summary.count) images)")
        print("Rule        \(ruleName)" + (choice.overridden ? " (overrides the recorded \(choice.recorded!.rawValue))" : ""))
        print(String(format: "Accuracy    %.4f (%d/%d correct)", summary.accuracy, summary.correct, summary.count))
        print(String(format: "NLL         %.4f", summary.negativeLogLikelihood))
        print(String(format: "Time        %.1f s (%.0f images/s)", seconds, Double(summary.count) / max(seconds, 1e-9)))
        print("")
        let width = max(5, (names.map(\.count).max() ?? 5) + 2)
        print(pad("class", 7) + pad("name", width) + pad("support", 9) + pad("correct", 9) + pad("predicted", 11) + "accuracy")
        for (index, tally) in summary.perClass.enumerated() {
            print(pad("\(index)", 7) + pad(names[index], width) + pad("\(tally.support)", 9) + pad("\(tally.correct)", 9)
                + pad("\(tally.predicted)", 11) + (tally.support == 0 ? "-" : String(format: "%.4f", tally.accuracy)))
        }
    }
}
