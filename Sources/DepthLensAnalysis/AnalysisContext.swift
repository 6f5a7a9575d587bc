import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// Everything an analysis needs: the network and its evaluator, the data, the schedule's
/// survival probabilities, the test-time rule, the metrics, and how to report progress.
/// The CLI builds one from flags; analyses never touch files.
public struct AnalysisContext {
    public var checkpoint: Checkpoint
    public var evaluator: Evaluator
    public var source: any ImageSource
    public var batchSize: Int
    /// p_l of every block under the chosen schedule.
    public var survival: [Double]
    /// The schedule as the user named it (for the CSV).
    public var scheduleName: String
    /// How the deterministic network is formed, and how kept blocks are scaled when sampling.
    public var rule: TrainingMetadata.TestTimeRule
    /// Metric specs, such as `accuracy`, `nll`, `calibration:bins=15`.
    public var metrics: [String]
    public var registry: PluginRegistry
    public var seed: UInt64
    /// Called with (units done, total units) as work completes.
    public var progress: ((Int, Int) -> Void)?
    /// Where finished units are saved as they complete, and found again when resuming;
    /// nil to keep nothing. With a journal, sub-networks are evaluated in groups of
    /// ``MemberEvaluation/configurationsPerUnit`` and the run stops between batches when
    /// ``stopRequest`` is set.
    public var journal: ProgressJournal?
    /// Polled between units of work when there is a journal: once set, the analysis
    /// throws ``Interrupted``. Nil: nothing stops the run.
    public var stopRequest: StopRequest?
    /// Which part of the work this run does: all of it, a plan, one shard, or a replay of
    /// saved units (``WorkScope``).
    public var scope: WorkScope = .everything
    /// Put before the name of every journal unit this context saves: several checkpoints
    /// compared in one run share one journal, and their units would otherwise have the same
    /// names (a unit is named by its gates, data and metrics, not by the network).
    public var unitNamespace = ""

    public init(checkpoint: Checkpoint, evaluator: Evaluator, source: any ImageSource, batchSize: Int,
                survival: [Double], scheduleName: String, rule: TrainingMetadata.TestTimeRule,
                metrics: [String], registry: PluginRegistry, seed: UInt64, progress: ((Int, Int) -> Void)? = nil) {
        self.checkpoint = checkpoint
        self.evaluator = evaluator
        self.source = source
        self.batchSize = batchSize
        self.survival = survival
        self.scheduleName = scheduleName
        self.rule = rule
        self.metrics = metrics
        self.registry = registry
        self.seed = seed
        self.progress = progress
    }

    /// Entries of a gate vector: the blocks, or with ``GateUnit/branch`` every residual
    /// branch (``Evaluator/unit``); ``survival`` and every mask have this many.
    public var blockCount: Int { evaluator.gateCount }

    /// The block of every gate entry, numbered as the gates are: the architecture's blocks,
    /// or with ``GateUnit/branch`` on a network of several branches per block, one per
    /// branch (its block's channels, stage and shortcut), numbered 1...`blockCount`.
    public var gateBlocks: [BlockSpec] {
        let blocks = checkpoint.architecture.blocks
        guard blockCount != blocks.count else { return blocks }
        let owners = evaluator.network.survivalPerGate(blocks.map { Double($0.index) }, unit: evaluator.unit)
        return owners.enumerated().map { g, owner in
            var spec = blocks[Int(owner) - 1]
            spec.index = g + 1
            return spec
        }
    }

    /// The deterministic network's gates: p_l (expectation) or 1 (inverted).
    public var deterministicGates: [Float] {
        rule == .expectation ? survival.map { Float($0) } : [Float](repeating: 1, count: blockCount)
    }

    /// Gates of a sampled sub-network, as during training: kept blocks 1 (expectation-trained)
    /// or 1/p_l (inverted-trained), dropped blocks 0.
    public func sampledGates(_ keep: [Bool]) -> [Float] {
        Gates.sampled(keep: keep, rule: rule, survival: survival)
    }

    /// A fresh result table for this checkpoint, schedule and seed.
    public func table() -> ResultTable {
        var table = ResultTable(checkpoint: checkpoint.path, schedule: scheduleName, seed: seed)
        if evaluator.network.hasSeveralBranchesPerBlock { table.gateUnit = evaluator.unit.rawValue }
        return table
    }

    /// The estimated cost of one image of the data through the network (``ComputeCost``).
    public func computeCost() throws -> ComputeCost {
        try checkpoint.architecture.modelDescription.computeCost(height: max(source.height, 1), width: max(source.width, 1))
    }

    /// Every label of the data, checked against the number of classes.
    func allLabels() throws -> [Int] {
        let classes = checkpoint.architecture.numClasses
        guard let labels = try source.labels(0..<source.count) else {
            throw DataSetError(source: source.name, message: "has no labels; analyses need them")
        }
        if let bad = labels.firstIndex(where: { !(0..<classes).contains($0) }) {
            throw DataSetError(source: source.name, message: "label \(labels[bad]) of image \(bad) is outside 0...\(classes - 1)")
        }
        return labels
    }

    /// Fresh accumulators for the metric specs of the given scopes.
    func accumulators(scopes: Set<MetricScope>) throws -> [any MetricAccumulator] {
        try metrics.compactMap { spec in
            let made = try registry.makeMetric(spec, classes: checkpoint.architecture.numClasses)
            return scopes.contains(made.descriptor.scope) ? made.accumulator : nil
        }
    }

    /// Checks every metric spec before any computation.
    public func validateMetrics() throws {
        for spec in metrics { _ = try registry.makeMetric(spec, classes: checkpoint.architecture.numClasses) }
    }
}

/// Collects results from accumulators, stopping on a plugin's reported failure.
func results(of accumulators: [any MetricAccumulator]) throws -> [MetricResult] {
    var out: [MetricResult] = []
    for accumulator in accumulators {
        // Before and after: a plugin can report a failure from results() too.
        if let failure = accumulator.failure { throw PluginError(spec: "metric", message: failure) }
        let results = accumulator.results()
        if let failure = accumulator.failure { throw PluginError(spec: "metric", message: failure) }
        out += results
    }
    return out
}
