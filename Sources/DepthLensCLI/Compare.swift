import ArgumentParser
import DepthLens
import Foundation

/// `depthlens compare A.h5 B.h5 ...`: the report's parts on every checkpoint, paired (the
/// same seeded sub-networks on each), in one tidy CSV with a `checkpoint` column, overlay
/// plots, summary.md and index.html (``Comparison``).
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Checkpoints side by side: the same seeded sub-networks on each (paired), one CSV, overlay plots.",
        discussion: """
            Runs report's parts on every checkpoint: single and k-block lesions, a Monte Carlo \
            ensemble, error against the number of active blocks, and path lengths. Deleting \
            block l, trial t of k random blocks, trial t of d active blocks and ensemble member \
            m are the same draw on every checkpoint (drawn from the seed alone); adaptive trials \
            add a round to a k or depth on every checkpoint while any one's interval is wider \
            than --ci-width, so all get the same trials. The CSV adds, for each later \
            checkpoint, the mean paired difference of the error against the first per k and \
            depth, with a bootstrap interval over the trials. The checkpoints must have the \
            same number of blocks and classes and read the data alike. Unless --limit says \
            otherwise, the first 2,000 images are used, as in report. `report A.h5 B.h5 ...` \
            runs the same comparison with report's file layout.
            """)

    @OptionGroup var options: AnalysisOptions

    @Argument(help: ArgumentHelp("The other checkpoints.", valueName: "checkpoint"))
    var others: [String] = []

    @Option(help: "Largest number of random blocks deleted.")
    var maxK = 10

    @OptionGroup var trialOptions: TrialOptions

    @Option(help: "Ensemble members.")
    var members = 8

    @Option(help: "The y axis of the single-block plot: linear, log, or clip (ends at Q3 + 3 IQR of the errors; higher ones are marked on the top edge).")
    var yScale: LinePlot.YScale = .linear

    func validate() throws {
        guard !others.isEmpty else { throw ValidationError("compare needs at least two checkpoints.") }
        guard maxK >= 0 else { throw ValidationError("--max-k must be zero or more.") }
        guard members >= 1 else { throw ValidationError("--members must be at least 1.") }
        try Comparison.validate(paths: [options.checkpoint] + others, options: options, command: "compare")
        try SizeBounds.check(flag: "--max-k, --trials", Comparison.sizeFactors(maxK: maxK, trials: trialOptions.mostTrials, checkpoints: 1 + others.count))
    }

    func run() throws {
        try Comparison(layout: .compare, options: options, paths: [options.checkpoint] + others, maxK: maxK,
                       trialOptions: trialOptions, members: members, yScale: yScale).run()
    }
}
