import DepthLensFormats
import DepthLensModel
import Foundation

/// Evaluates a ``Network`` on batches of images under any pattern of active, dropped
/// and scaled blocks.
///
/// Two engines compute the same logits (to 1e-4): ``Backend/fast`` (the default) runs
/// fused oneDNN convolutions on the whole batch and shares work between gate
/// configurations; ``Backend/reference`` runs the plain Swift kernels one image at a
/// time and is what the fast engine is tested against.
public struct Evaluator: Sendable {
    /// Which engine computes the logits.
    public enum Backend: String, Sendable, CaseIterable {
        /// Plain Swift kernels, one image at a time: the correctness baseline.
        case reference
        /// Fused oneDNN convolutions on blocked activations, with prefix sharing between
        /// configurations (falls back to the reference when oneDNN cannot start, or for a
        /// grouped convolution that is not depthwise).
        case fast
    }

    public let network: Network
    /// Threads a batch is computed on.
    public let threads: Int
    /// The most threads an evaluator uses: far more than any machine's processors (the
    /// command line refuses more).
    public static let maximumThreads = 4096
    public let backend: Backend
    /// What a gate vector's entries address: blocks (a transformer block's branches share
    /// one gate) or residual branches. The same for the ResNets.
    public let unit: GateUnit
    /// The gate of every residual unit (nil: the units themselves).
    private let gateIndex: [Int]?

    /// - Parameters:
    ///   - threads: defaults to the number of active processors; at most
    ///     ``maximumThreads`` are used (more only take turns, and an absurd count would
    ///     overflow the split of a batch).
    ///   - backend: the engine; ``Backend/fast`` unless the caller chooses another (the
    ///     library reads no environment: the `depthlens` command line maps its
    ///     `DEPTHLENS_BACKEND` variable to this argument).
    ///   - unit: what gate vectors address; ``GateUnit/block`` unless the caller chooses.
    public init(network: Network, threads: Int? = nil, backend: Backend = .fast, unit: GateUnit = .block) {
        self.network = network
        self.threads = min(max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount), Self.maximumThreads)
        self.backend = backend
        self.unit = unit
        gateIndex = network.gateIndex(unit)
    }

    /// Entries of a gate vector: blocks, or residual branches with ``GateUnit/branch``.
    public var gateCount: Int { gateIndex.map { ($0.max() ?? -1) + 1 } ?? network.blockCount }

    /// An evaluator of `network` with this one's threads and backend: what an analysis
    /// uses for a network of its own (reordered, or with recalibrated batch norms), so
    /// that the engine the caller chose is the one every evaluation runs on.
    public func with(network: Network) -> Evaluator {
        Evaluator(network: network, threads: threads, backend: backend, unit: unit)
    }

    /// Whether oneDNN started and has JIT convolutions on this CPU (SSE4.1 or better), so
    /// that ``Backend/fast`` really runs the fused engine (otherwise it falls back to the
    /// reference kernels).
    public static var isFastEngineAvailable: Bool { DNNL.shared != nil }

    /// Bytes of activation buffers the fast engine plans for one pass over `batchSize`
    /// images of `height` x `width` on this evaluator's threads (one gate per block; the
    /// configurations API adds one block output per branching level, per-example gates
    /// two), computed from the network's shapes, not measured. The chunk of images a
    /// worker takes shrinks so that this stays within ``activationBudgetBytes`` where one
    /// image a worker allows.
    public func plannedActivationBytes(batchSize: Int, height: Int, width: Int) -> Int {
        ActivationPlan(network: network, count: batchSize, channels: network.architecture.inChannels, height: height,
                       width: width, threads: threads, widestBlock: DNNL.shared?.widestBlock ?? 8).bytes
    }

    /// The activation bytes a fast-engine pass plans at most, all workers together, unless
    /// one image per worker needs more (see ``plannedActivationBytes(batchSize:height:width:)``).
    public static var activationBudgetBytes: Int { ActivationPlan.budgetBytes }

    /// Logits for every image of `batch`: a tensor of shape (N, classes).
    /// - Throws: ``EvaluationError`` when the images or the gates do not fit the network.
    public func logits(_ batch: ImageBatch, gates: Gates = .allOn) throws -> Tensor {
        try validate(batch)
        try gates.validate(blockCount: gateCount, count: batch.count)
        let gates = gates.expanded(gateIndex)
        let classes = network.architecture.numClasses
        if batch.count == 0 { return Tensor(shape: [0, classes], scalars: []) }
        let scalars = engine.logits(batch, gates: gates)
        try checkFinite(scalars, batch: batch, gates: gates)
        return Tensor(shape: [batch.count, classes], scalars: scalars)
    }

    /// Logits of several gate configurations (one shared gate vector each) on the same
    /// batch: `result[i]` is `logits(batch, gates: .shared(configurations[i]))`.
    ///
    /// Analyses evaluate many sub-networks of one batch through this entry point: the
    /// fast engine evaluates the configurations in prefix order, so configurations that
    /// agree on their first blocks share that work.
    /// - Complexity: memory for about log2(configurations.count) + 2 cached activations
    ///   of one chunk of the batch.
    public func logits(_ batch: ImageBatch, configurations: [[Float]]) throws -> [Tensor] {
        try validate(batch)
        for configuration in configurations {
            try Gates.shared(configuration).validate(blockCount: gateCount, count: batch.count)
        }
        let configurations = gateIndex.map { index in configurations.map { c in index.map { c[$0] } } } ?? configurations
        let classes = network.architecture.numClasses
        if batch.count == 0 { return configurations.map { _ in Tensor(shape: [0, classes], scalars: []) } }
        let results = engine.logits(batch, configurations: configurations)
        for (scalars, configuration) in zip(results, configurations) {
            try checkFinite(scalars, batch: batch, gates: .shared(configuration))
        }
        return results.map { Tensor(shape: [batch.count, classes], scalars: $0) }
    }

    /// Throws ``EvaluationError/nonFiniteLogits(_:)`` for the first logit of `scalars` that
    /// is not finite, naming the image (in the batch), the gates, and the first stage whose
    /// output is not finite (the image run again alone on the reference engine: a cost
    /// paid only on failure).
    private func checkFinite(_ scalars: [Float], batch: ImageBatch, gates: Gates) throws {
        guard let bad = scalars.firstIndex(where: { !$0.isFinite }) else { return }
        let classes = network.architecture.numClasses
        let example = bad / classes
        let vector = (0..<network.blockCount).map { gates.gate(block: $0, example: example) }
        let stage = ReferenceEngine(network: network, threads: 1).firstNonFiniteStage(example: example, of: batch, gates: gates)
        throw EvaluationError.nonFiniteLogits(NonFiniteLogits(image: example, gates: vector, logitClass: bad % classes,
                                                              value: scalars[bad], stage: stage))
    }

    private func validate(_ batch: ImageBatch) throws {
        guard batch.channels == network.architecture.inChannels else {
            throw EvaluationError.inputSize("images have \(batch.channels) channel(s), the network takes \(network.architecture.inChannels)")
        }
        _ = try network.activationShapes(height: batch.height, width: batch.width)
    }

    /// Why ``Backend/fast`` runs this network on the reference kernels instead (the fused
    /// engine does not lower one of its operations), or nil when it does not have to.
    public var fastEngineRefusal: String? {
        backend == .fast ? FusedEngine.unsupported(network) : nil
    }

    private var engine: any EvaluationEngine {
        if backend == .fast, FusedEngine.unsupported(network) == nil, let dnnl = DNNL.shared, network.fusedEngineRuns {
            return FusedEngine(network: network, threads: threads, dnnl: dnnl)
        }
        return ReferenceEngine(network: network, threads: threads)
    }
}

/// What an engine does: logits of a validated batch (N x classes values, row-major)
/// under validated gates.
protocol EvaluationEngine {
    func logits(_ batch: ImageBatch, gates: Gates) -> [Float]
    /// One result per configuration, each as `logits(batch, gates: .shared(configuration))`.
    func logits(_ batch: ImageBatch, configurations: [[Float]]) -> [[Float]]
}
