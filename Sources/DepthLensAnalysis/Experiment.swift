import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// What a result row is about: the sub-network (or ensemble, or distribution) an analysis
/// evaluated, as a typed value. Its ``name`` is the `configuration` column of the results
/// CSV and its ``kind`` the `experiment` column; both are derived here and nowhere else.
public enum Experiment: Sendable, Hashable {
    /// The deterministic network with no block deleted (lesion; `none`).
    case fullNetwork
    /// The deterministic network with block `block` (1-based) deleted alone (`drop-L`).
    case singleLesion(block: Int)
    /// Trial `trial` of deleting `k` blocks chosen at random (`k-K-trial-T`).
    case randomLesion(k: Int, trial: Int)
    /// Every trial of deleting `k` random blocks together: their mean and median error with
    /// intervals (`k-K`; ``TrialStatistics``).
    case randomLesionSummary(k: Int)
    /// The blocks of a `--drop` list deleted; `list` as written on the command line (`drop-list-...`).
    case dropList(String)
    /// Every block outside a `--keep` list deleted; `list` as written (`keep-list-...`).
    case keepList(String)
    /// Pruned by `rule` (`every-other`, `evenly-spaced`, `greedy`) to `depth` blocks kept (`prune-RULE-D`).
    case pruned(rule: String, depth: Int)
    /// Sub-network `index` drawn from the schedule (`sample-M`).
    case sampled(index: Int)
    /// Trial `trial` of a sub-network with exactly `active` blocks on (`depth-D-trial-T`).
    case fixedDepth(active: Int, trial: Int)
    /// Every trial of depth `active` together: mean and median error with intervals (`depth-D`).
    case fixedDepthSummary(active: Int)
    /// Trial `trial` of `swaps` random swaps of blocks within stages (`swaps-S-trial-T`).
    case reordered(swaps: Int, trial: Int)
    /// An ensemble of the first `members` sub-networks, gates drawn per `granularity` (`GRANULARITY-M-S`).
    case ensemble(granularity: EnsembleAnalysis.Granularity, members: Int)
    /// The deterministic network under the test-time rule `rule` (`deterministic-RULE`).
    case deterministic(rule: TrainingMetadata.TestTimeRule)
    /// The number of active blocks under the schedule, Poisson-binomial (`schedule`).
    case scheduleDistribution
    /// The lengths of the 2^L unrolled paths, Binomial(L, 1/2) (`unrolled-binomial`).
    case unrolledBinomial
    /// Draw `sample` of a backward pass through the branches of `length` blocks and the
    /// shortcuts of the others (``GradientPathsAnalysis``; `length-K-sample-S`).
    case gradientPath(length: Int, sample: Int)
    /// Every draw of path length `length` together (`length-K`).
    case gradientPathSummary(length: Int)
    /// The path lengths that carry most of the gradient (`effective-paths`).
    case effectivePaths

    /// The configuration name, unique within an analysis (before any `-recalibrated` suffix).
    public var name: String {
        switch self {
        case .fullNetwork: "none"
        case .singleLesion(let block): "drop-\(block)"
        case .randomLesion(let k, let trial): "k-\(k)-trial-\(trial)"
        case .randomLesionSummary(let k): "k-\(k)"
        case .dropList(let list): "drop-list-\(list)"
        case .keepList(let list): "keep-list-\(list)"
        case .pruned(let rule, let depth): "prune-\(rule)-\(depth)"
        case .sampled(let index): "sample-\(index)"
        case .fixedDepth(let active, let trial): "depth-\(active)-trial-\(trial)"
        case .fixedDepthSummary(let active): "depth-\(active)"
        case .reordered(let swaps, let trial): "swaps-\(swaps)-trial-\(trial)"
        case .ensemble(let granularity, let members): "\(granularity.rawValue)-M-\(members)"
        case .deterministic(let rule): "deterministic-\(rule.rawValue)"
        case .scheduleDistribution: "schedule"
        case .unrolledBinomial: "unrolled-binomial"
        case .gradientPath(let length, let sample): "length-\(length)-sample-\(sample)"
        case .gradientPathSummary(let length): "length-\(length)"
        case .effectivePaths: "effective-paths"
        }
    }

    /// The kind of experiment, the same for every trial or size of it (the `experiment` column).
    public var kind: String {
        switch self {
        case .fullNetwork: "full-network"
        case .singleLesion: "single-lesion"
        case .randomLesion, .randomLesionSummary: "random-lesion"
        case .dropList: "drop-list"
        case .keepList: "keep-list"
        case .pruned: "prune"
        case .sampled: "sample"
        case .fixedDepth, .fixedDepthSummary: "depth"
        case .reordered: "reorder"
        case .ensemble: "ensemble"
        case .deterministic: "deterministic"
        case .scheduleDistribution: "schedule"
        case .unrolledBinomial: "unrolled-binomial"
        case .gradientPath, .gradientPathSummary, .effectivePaths: "gradient-paths"
        }
    }

    /// The deleted block of a single lesion (the `block` column); nil for other experiments.
    public var block: Int? {
        if case .singleLesion(let block) = self { return block }
        return nil
    }

    /// The draw number (the `trial` column): trial T of a random lesion, a depth or a
    /// reordering, member M of `sample`; nil for experiments drawn once.
    public var trial: Int? {
        switch self {
        case .randomLesion(_, let trial), .fixedDepth(_, let trial), .reordered(_, let trial), .gradientPath(_, let trial): trial
        case .sampled(let index): index
        default: nil
        }
    }
}

/// Whose numbers a result row holds inside its experiment.
public enum Member: Sendable, Hashable {
    /// The one deterministic network (lesions, reorderings, the ensemble's reference).
    case deterministic
    /// The pooled prediction of an ensemble.
    case ensemble
    /// One drawn sub-network: its number (`sample`) or trial (`depth`), which the row's
    /// experiment also carries (``Experiment/trial``, the `trial` column).
    case number(Int)
    /// Every trial of an experiment together (summary rows: means, medians, intervals).
    case overTrials

    /// The `member` column: always a word (`sub-network` for a drawn one, whose number is
    /// in the `trial` column), so the column holds one type.
    public var name: String {
        switch self {
        case .deterministic: "deterministic"
        case .ensemble: "ensemble"
        case .number: "sub-network"
        case .overTrials: "over-trials"
        }
    }
}
