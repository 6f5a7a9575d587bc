import ArgumentParser
import DepthLens

/// How many trials random deletion and fixed-depth sub-networks get (lesion --random-k,
/// depth, report): by default rounds of trials until the 95% bootstrap interval of each
/// mean error is at most --ci-width wide; `--trials N` fixes the count instead.
struct TrialOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Trials per k (random deletion) and per depth, exactly (default: adaptive, see --ci-width). k = 0, k = L, depth 0 and depth L are evaluated once.", valueName: "n"))
    var trials: Int?

    @Option(help: ArgumentHelp("Without --trials: add rounds of 10 trials to a k or depth until the 95% bootstrap interval of its mean error is at most this wide (0.04: +/-2 points), up to --max-trials.", valueName: "width"))
    var ciWidth: Double = TrialPlan.defaultCIWidth

    @Option(help: ArgumentHelp("Without --trials: the most trials a k or depth gets.", valueName: "n"))
    var maxTrials: Int = TrialPlan.defaultMaximum

    func validate() throws {
        if let trials, trials < 1 { throw ValidationError("--trials must be at least 1.") }
        guard ciWidth > 0, ciWidth <= 1 else { throw ValidationError("--ci-width must be in (0, 1], found \(ciWidth).") }
        guard maxTrials >= 2 else { throw ValidationError("--max-trials must be at least 2.") }
    }

    /// The most trials a k or depth can get: --trials, or --max-trials when adaptive.
    var mostTrials: Int { trials ?? maxTrials }

    /// The plan an analysis runs with `options`. A dry run computes no results for
    /// adaptive rounds to stop on, so it counts them at --max-trials: an upper bound.
    func plan(_ options: AnalysisOptions) -> TrialPlan {
        let fixed = trials ?? (options.dryRun ? maxTrials : nil)
        return TrialPlan(fixed: fixed, ciWidth: ciWidth, step: min(TrialPlan.defaultStep, maxTrials), maximum: maxTrials)
    }

    /// Shards must agree on every sub-network before any runs, but adaptive rounds are
    /// chosen from the results of the rounds before, which no shard sees whole.
    func checkShardable(_ options: AnalysisOptions) throws {
        guard trials == nil, options.shard != nil else { return }
        throw ValidationError("--shard needs --trials N: adaptive trials choose each round from the results of the rounds before, which shards do not share.")
    }

    /// For a progress journal's configuration.
    var description: String {
        trials.map { "\($0) trials" } ?? "adaptive: 95% interval of the mean error at most \(ciWidth) wide, at most \(maxTrials) trials"
    }
}
