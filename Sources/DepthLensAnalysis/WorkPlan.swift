import Foundation

/// Which part of an analysis' work a run does. An analysis runs the same code in every
/// scope, so a plan, a shard and a merge cut the work exactly as an ordinary run does.
public enum WorkScope: Sendable {
    /// Every unit (the ordinary run).
    case everything
    /// Nothing is computed: every unit is recorded in the plan with its estimated cost,
    /// and the analysis' tables are placeholders.
    case planning(WorkPlan)
    /// Only these units (``WorkPlan/Unit/key``) are computed and saved in the journal; the
    /// analysis' tables are then partial and are not results.
    case shard(Set<String>)
    /// Nothing is computed: every unit must be in the journal (a merge of shards).
    case replay

    /// Whether the tables the analysis returns are not the results (planning, a shard).
    public var isPartial: Bool {
        switch self {
        case .everything, .replay: false
        case .planning, .shard: true
        }
    }
}

/// The work units of an analysis with their estimated costs, as a planning run
/// (``WorkScope/planning(_:)``) finds them: one section per evaluation (the sub-networks
/// of a lesion study, an ensemble's batches, ...), in the order the analysis runs them.
public final class WorkPlan: @unchecked Sendable {
    /// One unit of saved work: a sub-network evaluated over all the data, or one batch of
    /// an ensemble.
    public struct Unit: Sendable, Equatable {
        /// The journal's name of the unit: `SECTION/INDEX`.
        public var key: String
        /// Estimated floating-point operations.
        public var cost: Double
    }

    /// One evaluation's units.
    public struct Section: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case subNetworks = "sub-networks", ensembleBatches = "ensemble batches"
            /// Backward passes of ``GradientPathsAnalysis``: one unit per path length.
            case gradientPaths = "gradient paths"
        }
        public var key: String
        public var kind: Kind
        public var units: [Unit]
        /// Sub-networks evaluated over the data (for an ensemble: members x passes; for
        /// gradient paths: backward route patterns).
        public var subNetworks: Int
        /// Images the section reads.
        public var images: Int
        /// What a shard pays once when it computes any unit of the section: the reference
        /// network beside its sub-networks, the stem they share.
        public var overhead: Double
    }

    public private(set) var sections: [Section] = []
    /// Extra cost per sub-network of the next sub-network section (batch-norm
    /// recalibration, planned before the evaluation it prepares).
    var pendingCostPerSubNetwork = 0.0
    private let lock = NSLock()

    public init() {}

    func add(_ section: Section) {
        lock.lock()
        defer { lock.unlock() }
        sections.append(section)
    }

    /// Every unit, section by section.
    public var units: [Unit] { sections.flatMap(\.units) }

    /// Estimated operations of the whole run on one machine (every section's overhead once).
    public var totalCost: Double { sections.reduce(0) { $0 + $1.overhead + $1.units.reduce(0) { $0 + $1.cost } } }

    /// A digest of the units and their order: shards of one plan agree on it.
    public var digest: String {
        ProgressJournal.digest(sections.map { Array(($0.key + ":" + $0.units.map(\.key).joined(separator: ",")).utf8) })
    }
}

/// `K/N`: the K-th of N parts of a run (1 <= K <= N).
public struct ShardSpec: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1 else { throw ShardSpecError("the number of shards N must be at least 1 (got \(index)/\(count))") }
        guard (1...count).contains(index) else {
            throw ShardSpecError("K must be between 1 and N (got \(index)/\(count)); shards are numbered from 1")
        }
        (self.index, self.count) = (index, count)
    }

    /// Parses `K/N`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0].trimmingCharacters(in: .whitespaces)),
              let n = Int(parts[1].trimmingCharacters(in: .whitespaces)) else {
            throw ShardSpecError("'\(text)' is not K/N (such as 2/8: the second of eight shards)")
        }
        try self.init(index: k, count: n)
    }

    public var description: String { "\(index)/\(count)" }
}

/// A shard specification that cannot be used.
public struct ShardSpecError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The deterministic split of a plan's units into N shards, balanced by estimated cost.
///
/// Longest-processing-time first: units are taken from the most to the least costly (ties in
/// plan order), each given to the shard whose estimated total grows least (ties: the lowest
/// shard), counting a section's overhead once per shard that computes any of its units.
/// Every unit goes to exactly one shard, and the same plan always gives the same split.
public struct ShardSplit: Sendable, Equatable {
    /// The unit keys of each shard (shard K at index K - 1), in plan order.
    public var shards: [[String]]
    /// The estimated operations of each shard, overheads included.
    public var costs: [Double]

    public init(_ plan: WorkPlan, shards count: Int) {
        precondition(count >= 1)
        var indexed: [(unit: WorkPlan.Unit, section: Int, order: Int)] = []
        for (s, section) in plan.sections.enumerated() {
            for unit in section.units { indexed.append((unit, s, indexed.count)) }
        }
        let sorted = indexed.sorted { ($0.unit.cost, -$0.order) > ($1.unit.cost, -$1.order) }
        var load = [Double](repeating: 0, count: count)
        var hasSection = [Set<Int>](repeating: [], count: count)
        var owner = [Int](repeating: 0, count: indexed.count)
        for item in sorted {
            let overhead = plan.sections[item.section].overhead
            var best = 0, bestLoad = Double.infinity
            for shard in 0..<count {
                let grown = load[shard] + item.unit.cost + (hasSection[shard].contains(item.section) ? 0 : overhead)
                if grown < bestLoad { (best, bestLoad) = (shard, grown) }
            }
            load[best] = bestLoad
            hasSection[best].insert(item.section)
            owner[item.order] = best
        }
        var shards = [[String]](repeating: [], count: count)
        for item in indexed { shards[owner[item.order]].append(item.unit.key) }
        self.shards = shards
        costs = load
    }

    /// The slowest shard's estimate over the mean shard's.
    public var imbalance: Double {
        let mean = costs.reduce(0, +) / Double(max(costs.count, 1))
        return mean > 0 ? (costs.max() ?? 0) / mean : 1
    }
}
