import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// Batch-norm recalibration for a fixed sub-network: dropping blocks shifts the
/// statistics the later batch norms see, so their running mean and variance are
/// re-estimated on training images, as PyTorch does with `model.train()`, reset running
/// statistics and `momentum=None`: every batch is normalised with its own statistics, and
/// each running statistic becomes the plain average over batches of the batch mean and of
/// the unbiased batch variance. Batch norms of dropped residual branches keep theirs.
///
/// This runs the plain reference kernels on whole batches (batch statistics need them);
/// it is meant for a few thousand images.
public enum BatchNormRecalibration {
    /// The networks of `configurations`, each with its statistics re-estimated on
    /// `source`; nil without a source (the analyses then use the context's network).
    ///
    /// Only the configurations this run evaluates are recalibrated: not those a resumed run
    /// or a merge replays from the journal, nor another shard's (they get the context's
    /// network, which has the same block order, so the journal names their units alike).
    /// A plan recalibrates nothing and counts the cost of each recalibration instead.
    public static func networks(_ context: AnalysisContext, _ configurations: [[Float]],
                                _ source: (any ImageSource)?) throws -> [Network]? {
        guard let source else { return nil }
        let plain = configurations.map { _ in context.evaluator.network }
        if case .planning(let plan) = context.scope {
            plan.pendingCostPerSubNetwork = Double(source.count) * (try context.computeCost()).network(gates: [Float](repeating: 1, count: context.blockCount))
            return plain
        }
        let units = JournalUnits(context) { MemberEvaluation.sectionKey(context, configurations: configurations, networks: plain) }
        return try configurations.enumerated().map { i, gates in
            if units.journal != nil, !units.owns(i) || units.saved(i).flatMap({ MemberEvaluation.decode($0, count: 1) }) != nil {
                return plain[i]
            }
            return Network(checkpoint: try recalibrate(context.checkpoint, gates: gates, source: source, batchSize: context.batchSize))
        }
    }

    /// A copy of `checkpoint` whose running statistics are re-estimated under `gates`.
    public static func recalibrate(_ checkpoint: Checkpoint, gates: [Float], source: any ImageSource,
                                   batchSize: Int) throws -> Checkpoint {
        let arch = checkpoint.architecture
        guard arch.modelDescription.hasBatchNorm else { throw RecalibrationError(checkpoint: checkpoint) }
        guard gates.count == arch.blockCount else {
            throw EvaluationError.gates("the gate vector has \(gates.count) entries but the network has \(arch.blockCount) blocks")
        }
        guard source.count > 0, source.channels == arch.inChannels else {
            throw DataSetError(source: source.name, message: "recalibration needs images with \(arch.inChannels) channel(s)")
        }
        var pass = Pass(checkpoint: checkpoint)
        var stream = BatchStream(source, batchSize: batchSize)
        stream.minimumCount = 2  // one image has no variance (PyTorch refuses it too)
        try stream.forEach { pass.forward(try $0.images(), gates: gates) }
        var result = checkpoint
        for (name, sums) in pass.statistics where sums.batches > 0 {
            result.tensors["\(name).running_mean"]!.scalars = sums.mean.map { Float($0 / Double(sums.batches)) }
            result.tensors["\(name).running_var"]!.scalars = sums.variance.map { Float($0 / Double(sums.batches)) }
        }
        return result
    }

    /// One train-mode pass over the model description's operations: batch tensors are
    /// (N, C, H, W), row-major; every batch norm normalises with the batch's statistics
    /// and records them.
    struct Pass {
        let checkpoint: Checkpoint
        let model: ModelDescription
        var statistics: [String: (mean: [Double], variance: [Double], batches: Int)] = [:]

        init(checkpoint: Checkpoint) {
            self.checkpoint = checkpoint
            model = checkpoint.architecture.modelDescription
        }

        func tensor(_ key: String) -> [Float] { checkpoint.tensors[key]!.scalars }

        /// A batch of `n` images of one shape.
        struct Batch {
            var values: [Float]
            var n: Int
            var shape: ActivationShape
        }

        mutating func forward(_ batch: ImageBatch, gates: [Float]) {
            var x = Batch(values: batch.pixels, n: batch.count,
                          shape: ActivationShape(channels: batch.channels, height: batch.height, width: batch.width))
            x = run(model.stem, x)
            for unit in model.units {
                let g = gates[unit.block - 1]
                var activated = x
                if g != 0 || (unit.shortcutInput == .preActivated && !unit.hasIdentityShortcut) {
                    activated = run(unit.preActivation, x)
                }
                var sum = run(unit.shortcut, unit.shortcutInput == .preActivated ? activated : x)
                if g != 0 {
                    let residual = run(unit.branch, activated)
                    for k in 0..<sum.values.count { sum.values[k] += g * residual.values[k] }
                }
                x = run(unit.afterAdd, sum)
            }
            // Only the head's batch norm matters here (its statistics); the logits do not.
            _ = run(Array(model.head.prefix { if case .batchNorm = $0 { return true } else { return $0 == .relu } }), x)
        }

        mutating func run(_ operations: [ModelOperation], _ input: Batch) -> Batch {
            operations.reduce(input) { x, op in step(op, x) }
        }

        mutating func step(_ op: ModelOperation, _ x: Batch) -> Batch {
            let out = op.outputShape(x.shape)!
            switch op {
            case .batchNorm(let spec):
                return Batch(values: norm(spec, x), n: x.n, shape: x.shape)
            case .convolution, .relu, .maxPool, .averagePool2x2, .zeroChannels, .layerNorm, .gelu, .pointwiseLinear, .layerScale:
                var y = [Float](repeating: 0, count: x.n * out.count)
                x.values.withUnsafeBufferPointer { src in
                    y.withUnsafeMutableBufferPointer { dst in
                        ReferenceOperations.run(op, tensors: checkpoint.tensors, count: x.n, input: src.baseAddress!,
                                                shape: x.shape, output: dst.baseAddress!, outputCount: out.count)
                    }
                }
                return Batch(values: y, n: x.n, shape: out)
            case .globalAveragePool, .linear:
                preconditionFailure("recalibration stops before the classifier")
            case .transformer:
                preconditionFailure("recalibration refuses transformers before running (RecalibrationError)")
            }
        }

        /// Normalises with the batch's statistics and records them.
        mutating func norm(_ spec: BatchNormSpec, _ x: Batch) -> [Float] {
            let weight = tensor(spec.key + ".weight"), bias = tensor(spec.key + ".bias")
            let (n, c, plane) = (x.n, x.shape.channels, x.shape.height * x.shape.width)
            var y = x.values
            var record = statistics[spec.key] ?? ([Double](repeating: 0, count: c), [Double](repeating: 0, count: c), 0)
            let count = Double(n * plane)
            for ch in 0..<c {
                var sum = 0.0, squares = 0.0
                for i in 0..<n { for j in 0..<plane { let v = Double(x.values[(i * c + ch) * plane + j]); sum += v; squares += v * v } }
                let mean = sum / count
                let variance = max(0, squares / count - mean * mean)
                record.mean[ch] += mean
                record.variance[ch] += count > 1 ? variance * count / (count - 1) : 0
                let scale = Double(weight[ch]) / (variance + spec.eps).squareRoot()
                for i in 0..<n {
                    for j in 0..<plane {
                        let k = (i * c + ch) * plane + j
                        y[k] = Float((Double(x.values[k]) - mean) * scale + Double(bias[ch]))
                    }
                }
            }
            record.batches += 1
            statistics[spec.key] = record
            return y
        }
    }
}

/// Batch-norm recalibration asked of a network without batch norm: layer norm (ConvNeXt,
/// transformers) normalises each image with its own statistics, which no sub-network
/// shifts, so there is nothing to re-estimate.
public struct RecalibrationError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var family: String

    public init(checkpoint: Checkpoint) {
        (file, family) = (checkpoint.path, checkpoint.architecture.family)
    }

    public var description: String {
        "batch-norm recalibration does not apply: \(file) (\(family)) has no batch norm; it uses layer norm, whose "
            + "statistics are each image's own and do not shift when blocks are dropped"
    }
}
