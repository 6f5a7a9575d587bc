import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// One tidy result: one number about one member of one experiment of one analysis.
public struct ResultRow: Sendable, Equatable {
    public var analysis: String
    /// The sub-network or ensemble the number is about.
    public var experiment: Experiment
    /// Whether the sub-network's batch-norm statistics were re-estimated first
    /// (``BatchNormRecalibration``); its configuration name then ends in `-recalibrated`.
    public var recalibrated: Bool
    /// The member inside the experiment; nil where there is none (`paths`).
    public var member: Member?
    /// The analysis' x variable where it has one; one meaning per analysis (docs/results-csv.md):
    /// blocks deleted (`lesion`), active blocks (`sample`, `depth`, `paths`), members
    /// (`ensemble`), Kendall's tau (`reorder`).
    public var k: Double?
    public var metric: String
    public var value: Double
    /// Key of the gate mask in the companion masks file, or empty.
    public var mask: String
    /// The 95% interval of `value`, or the test that gave it, when the row is a statistic
    /// (``TrialStatistics``); nil for a plain measurement.
    public var interval: Interval?
    /// The checkpoint a paired difference is taken against (``PairedDifferences``: this
    /// row's checkpoint minus that one); nil for every other row.
    public var versus: String?

    /// How a statistic's row was estimated: its 95% interval (nil for a test's p-value),
    /// the method, and the count it rests on (columns `ci_low`, `ci_high`, `method`, `n`).
    public struct Interval: Sendable, Equatable {
        public var low: Double?
        public var high: Double?
        /// `wilson`, `bootstrap-percentile`, `mcnemar-exact`, `mcnemar-chi2-corrected`.
        public var method: String
        /// Images (Wilson), trials (bootstrap) or discordant examples (McNemar).
        public var n: Int

        public init(low: Double?, high: Double?, method: String, n: Int) {
            self.low = low
            self.high = high
            self.method = method
            self.n = n
        }
    }

    public init(analysis: String, experiment: Experiment, recalibrated: Bool = false, member: Member? = nil,
                k: Double? = nil, metric: String, value: Double, mask: String = "", interval: Interval? = nil) {
        self.interval = interval
        self.analysis = analysis
        self.experiment = experiment
        self.recalibrated = recalibrated
        self.member = member
        self.k = k
        self.metric = metric
        self.value = value
        self.mask = mask
    }

    /// The `configuration` column (such as `drop-7`, `k-5-trial-2`, `pass-M-8`), unique
    /// within the analysis.
    public var configuration: String { Self.configuration(experiment, recalibrated: recalibrated) }

    /// The configuration name of `experiment`, with `-recalibrated` when `recalibrated`.
    public static func configuration(_ experiment: Experiment, recalibrated: Bool) -> String {
        experiment.name + (recalibrated ? "-recalibrated" : "")
    }
}

/// Rows of an analysis plus the gate masks they refer to, written as tidy CSV.
///
/// `results.csv` columns: analysis, checkpoint, schedule, experiment, configuration,
/// member, block, k, metric, value, mask, seed (docs/results-csv.md). `masks.csv` columns: mask, order, gates (the gate of every
/// block, space-separated, in position order; order is the block order when reordered).
public struct ResultTable: Sendable {
    public var checkpoint: String
    public var schedule: String
    public var seed: UInt64
    /// What the masks' gates address, `block` or `branch`, for a network whose blocks hold
    /// several residual branches (a vision transformer); nil for the ResNets, whose masks
    /// then have no `unit` column.
    public var gateUnit: String?
    public private(set) var rows: [ResultRow] = []
    /// Gate vectors (and block orders) by mask key, in insertion order.
    public private(set) var masks: [(key: String, gates: [Float], order: [Int]?)] = []
    private var maskKeys: Set<String> = []

    public init(checkpoint: String, schedule: String, seed: UInt64) {
        self.checkpoint = checkpoint
        self.schedule = schedule
        self.seed = seed
    }

    public mutating func append(_ row: ResultRow) { rows.append(row) }
    public mutating func append(contentsOf more: [ResultRow]) { rows += more }

    /// Records a mask once under `key`.
    public mutating func recordMask(_ key: String, gates: [Float], order: [Int]? = nil) {
        guard maskKeys.insert(key).inserted else { return }
        masks.append((key, gates, order))
    }

    /// The value of `metric` for the first row about `experiment` (not recalibrated), or nil.
    public func value(_ metric: String, of experiment: Experiment) -> Double? {
        rows.first { $0.experiment == experiment && !$0.recalibrated && $0.metric == metric }?.value
    }

    public mutating func merge(_ other: ResultTable) {
        rows += other.rows
        for mask in other.masks { recordMask(mask.key, gates: mask.gates, order: mask.order) }
    }
}
