import ArgumentParser
import DepthLens
import Foundation

/// `--save-probabilities FILE.h5` (sample, ensemble --granularity pass): every member's
/// softmax probabilities on every image, written atomically as HDF5 (docs/results-csv.md,
/// "Probabilities file").
struct SaveProbabilitiesOption: ParsableArguments {
    @Option(help: ArgumentHelp("Also write every member's softmax probabilities on every image to this HDF5 file (datasets probabilities [members, images, classes], gates [members, blocks], labels [images]); one more pass over the data.", valueName: "file.h5"))
    var saveProbabilities: String?

    /// A shard or a dry run writes no results, so it has no probabilities to write either.
    func check(_ options: AnalysisOptions) throws {
        guard saveProbabilities != nil, options.writesNoResults else { return }
        throw ValidationError("--save-probabilities: a shard or a dry run writes no results; save them in an unsharded run.")
    }

    /// Evaluates the first `members` sampled sub-networks and writes the file, when asked.
    func write(_ context: AnalysisContext, members: Int, analysis: String) throws {
        guard let path = saveProbabilities else { return }
        let p = try MemberProbabilities.sampled(context, members: members)
        try AtomicFile.write(to: path) { temporary in
            let root = try HDF5File.create(temporary).root
            try root.write(p.values, shape: [members, p.images, p.classes], as: "probabilities")
            try root.write(p.gates.flatMap { $0 }, shape: [members, context.blockCount], as: "gates")
            try root.write(p.labels.map(Int64.init), shape: [p.images], as: "labels")
            try root.setAttribute("analysis", string: analysis)
            try root.setAttribute("checkpoint", string: context.checkpoint.path)
            try root.setAttribute("data", string: context.source.name)
            try root.setAttribute("schedule", string: context.scheduleName)
            try root.setAttribute("rule", string: context.rule.rawValue)
            try root.setAttribute("seed", string: "\(context.seed)")
        }
    }
}
