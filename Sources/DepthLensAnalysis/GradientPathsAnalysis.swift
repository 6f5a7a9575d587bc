import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI
import Foundation

/// Veit et al. 2016, section 5 ("effective paths"): how much gradient reaches the input
/// along paths of each length. The images go forward through the whole network (the
/// deterministic network under the checkpoint's test-time rule); in the backward pass, k
/// blocks drawn at random pass the gradient through their residual branch only and the
/// other L - k through their shortcut only; the L2 norm of the gradient arriving at each
/// image is recorded, for k = 0...L and several draws per k (one at k = 0 and k = L,
/// which have one path each).
///
/// The gradient magnitude falls roughly exponentially with k; multiplied by the number of
/// paths of that length, C(L, k), it gives the total gradient each length carries: the
/// "effective paths" are the lengths that carry most of it (5 to 17 of ResNet-110's 54
/// blocks in the paper).
public enum GradientPathsAnalysis {
    /// Images whose gradients are measured (the first of the data), unless the caller says.
    public static let defaultImages = 32
    /// Route patterns drawn per path length, unless the caller says.
    public static let defaultSamples = 8
    /// Images per saved unit of work (each through every route pattern).
    public static let imagesPerUnit = 4
    /// The share of the total gradient the effective range holds (its 5th to 95th percentile).
    public static let effectiveShare = 0.9

    /// Route patterns measured at path length `k` of `blocks`: one at 0 and at L (one path each).
    public static func sampleCount(length k: Int, blocks: Int, samples: Int) -> Int {
        k == 0 || k == blocks ? 1 : samples
    }

    /// The route pattern of draw `sample` at path length `k`: k blocks chosen uniformly
    /// (stream 4,000,000 + 10,000 k + sample of the seed) pass through their branch, the
    /// others through their shortcut.
    public static func routes(length k: Int, sample: Int, blocks: Int, seed: UInt64) -> [BackwardRoute] {
        var generator = SeededGenerator.stream(seed: seed, 4_000_000 + k * 10_000 + sample)
        return MaskSampling.exactly(k, of: blocks, using: &generator).map { $0 ? .branch : .shortcut }
    }

    /// The measurement. Rows (analysis `gradient-paths`, docs/results-csv.md): per draw,
    /// the mean gradient norm over the images; per length, the mean over draws with its
    /// percentile-bootstrap interval, the median and quartiles of every (draw, image) norm,
    /// C(L, k), the total gradient (mean x C(L, k)) and its share of the sum over lengths;
    /// and the effective range of lengths.
    /// - Parameters:
    ///   - images: the first `images` images of the data (at most all of them).
    ///   - samples: route patterns per length 1...L-1.
    /// - Throws: ``EvaluationError/unsupported(_:)`` for a family without a backward pass.
    public static func run(_ context: AnalysisContext, images: Int, samples: Int) throws -> ResultTable {
        let evaluator = context.evaluator
        if let refusal = evaluator.backwardRefusal { throw EvaluationError.unsupported(refusal) }
        let blocks = evaluator.network.blockCount
        let count = min(images, context.source.count)
        guard count > 0 else { throw DataSetError(source: context.source.name, message: "has no images to measure gradients on") }
        let lengths = Array(0...blocks)
        let patterns = lengths.map { k in
            (0..<sampleCount(length: k, blocks: blocks, samples: samples)).map { routes(length: k, sample: $0, blocks: blocks, seed: context.seed) }
        }
        // Units are chunks of images, each through every route pattern: one forward pass
        // (the tape) per image serves all of its backward passes.
        let all = patterns.flatMap { $0 }
        let chunks = stride(from: 0, to: count, by: imagesPerUnit).map { $0..<min(count, $0 + imagesPerUnit) }
        let units = JournalUnits(context) { sectionKey(context, images: count, samples: samples) }
        if case .planning(let plan) = context.scope {
            try planUnits(context, plan: plan, units: units, chunks: chunks, patterns: all)
            return context.table()
        }
        let labels = Array(try context.allLabels().prefix(count))
        // measured[unit][pattern][image of the chunk]; nil for another shard's unit.
        var measured: [[[Double]]?] = []
        for (u, range) in chunks.enumerated() {
            measured.append(try units.unit(u, decode: { decode($0, patterns: all.count, images: range.count) }, encode: encode) {
                let source = context.source
                let batch = ImageBatch(count: range.count, channels: source.channels, height: source.height, width: source.width,
                                       pixels: try source.pixels(range))
                return try evaluator.inputGradientNorms(batch, labels: Array(labels[range]), gates: context.deterministicGates, routes: all)
            })
            context.progress?(u + 1, chunks.count)
        }
        var table = context.table()
        guard !context.scope.isPartial else { return table }
        let chunksMeasured = measured.compactMap { $0 }
        guard chunksMeasured.count == chunks.count else { return table }
        // norms[k][sample][image], the chunks joined.
        var next = 0
        let norms = patterns.map { draws in
            draws.map { _ -> [Double] in
                defer { next += 1 }
                return chunksMeasured.flatMap { $0[next] }
            }
        }
        table.append(contentsOf: rows(norms: norms, patterns: patterns, blocks: blocks, images: count, seed: context.seed, table: &table))
        return table
    }

    /// The table's rows from the norms of every length, draw and image.
    static func rows(norms: [[[Double]]], patterns: [[[BackwardRoute]]], blocks: Int, images: Int, seed: UInt64,
                     table: inout ResultTable) -> [ResultRow] {
        var out: [ResultRow] = []
        var totals: [Double] = []
        var summaries: [(k: Int, rows: [ResultRow])] = []
        for (k, draws) in norms.enumerated() {
            var means: [Double] = []
            for (s, perImage) in draws.enumerated() {
                let experiment = Experiment.gradientPath(length: k, sample: s)
                table.recordMask(experiment.name, gates: patterns[k][s].map { $0 == .branch ? 1 : 0 })
                let mean = Statistics.mean(perImage)
                means.append(mean)
                out.append(ResultRow(analysis: "gradient-paths", experiment: experiment, member: .number(s), k: Double(k),
                                     metric: "mean_gradient_norm", value: mean, mask: experiment.name))
            }
            let summary = Experiment.gradientPathSummary(length: k)
            // One draw: the interval is over its images; several: over the draws' means.
            let resampled = means.count > 1 ? means : draws[0]
            let estimate = Statistics.bootstrap(resampled, seed: seed, stream: 5_000_000 + k).mean
            let all = draws.flatMap { $0 }.sorted()
            let pathCount = exp(lgamma(Double(blocks) + 1) - lgamma(Double(k) + 1) - lgamma(Double(blocks - k) + 1)).rounded()
            let mean = Statistics.mean(means)
            totals.append(mean * pathCount)
            func row(_ metric: String, _ value: Double, _ interval: ResultRow.Interval? = nil) -> ResultRow {
                ResultRow(analysis: "gradient-paths", experiment: summary, member: .overTrials, k: Double(k), metric: metric, value: value,
                          interval: interval)
            }
            let percentile = ResultRow.Interval(low: nil, high: nil, method: "percentile", n: all.count)
            summaries.append((k, [
                row("mean_gradient_norm", mean, .init(low: estimate.low, high: estimate.high, method: "bootstrap-percentile", n: resampled.count)),
                row("median_gradient_norm", Statistics.quantile(sorted: all, 0.5), percentile),
                row("q25_gradient_norm", Statistics.quantile(sorted: all, 0.25), percentile),
                row("q75_gradient_norm", Statistics.quantile(sorted: all, 0.75), percentile),
                row("samples", Double(draws.count)),
                row("images", Double(images)),
                row("path_count", pathCount),
                row("total_gradient", mean * pathCount),
            ]))
        }
        let sum = totals.reduce(0, +)
        let shares = totals.map { sum > 0 ? $0 / sum : 0 }
        for (k, rows) in summaries {
            out += rows
            out.append(ResultRow(analysis: "gradient-paths", experiment: .gradientPathSummary(length: k), member: .overTrials, k: Double(k),
                                 metric: "gradient_share", value: shares[k]))
        }
        let range = effectiveRange(shares)
        let mode = shares.indices.max { shares[$0] < shares[$1] } ?? 0
        for (metric, value) in [("effective_length_low", Double(range.low)), ("effective_length_high", Double(range.high)),
                                ("most_gradient_length", Double(mode)),
                                ("mean_gradient_length", zip(shares.indices, shares).reduce(0) { $0 + Double($1.0) * $1.1 })] {
            out.append(ResultRow(analysis: "gradient-paths", experiment: .effectivePaths, metric: metric, value: value))
        }
        return out
    }

    /// The lengths from the 5th to the 95th percentile of the gradient's distribution over
    /// lengths (``effectiveShare`` of it): the first k where the cumulative share reaches
    /// 0.05, and the first where it reaches 0.95.
    public static func effectiveRange(_ shares: [Double]) -> (low: Int, high: Int) {
        let tail = (1 - effectiveShare) / 2
        var cumulative = 0.0, low: Int?, high = max(shares.count - 1, 0)
        for (k, share) in shares.enumerated() {
            cumulative += share
            if low == nil, cumulative >= tail { low = k }
            if cumulative >= 1 - tail - 1e-12 { high = k; break }
        }
        return (low ?? 0, high)
    }

    static func planUnits(_ context: AnalysisContext, plan: WorkPlan, units: JournalUnits, chunks: [Range<Int>],
                          patterns: [[BackwardRoute]]) throws {
        let cost = try context.computeCost()
        // A backward pass costs about a forward pass through the layers it crosses.
        let perImage = cost.network(gates: context.deterministicGates)
            + patterns.reduce(0) { $0 + cost.network(gates: $1.map { $0 == .branch ? 1 : 0 }) }
        let planned = chunks.enumerated().map { u, range in WorkPlan.Unit(key: units.key(u), cost: Double(range.count) * perImage) }
        plan.add(.init(key: units.section, kind: .gradientPaths, units: planned, subNetworks: patterns.count,
                       images: chunks.last?.upperBound ?? 0, overhead: 0))
    }

    /// Names what is measured: data, images, draws, seed and the forward gates.
    static func sectionKey(_ context: AnalysisContext, images: Int, samples: Int) -> String {
        ProgressJournal.digest([Array("gradient-paths".utf8), Array(context.source.name.utf8), Array("\(context.source.count)".utf8),
                                Array("\(images) \(samples) \(context.seed)".utf8),
                                context.deterministicGates.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }])
    }

    /// One line per route pattern: the norm of every image of the unit, bit-exact.
    static func encode(_ norms: [[Double]]) -> [String] {
        norms.map { values in values.map { ProgressJournal.encode($0) }.joined(separator: "\t") }
    }

    static func decode(_ payload: [String], patterns: Int, images: Int) -> [[Double]]? {
        guard payload.count == patterns else { return nil }
        var out: [[Double]] = []
        for line in payload {
            let values = line.split(separator: "\t", omittingEmptySubsequences: false).compactMap { ProgressJournal.decodeDouble($0) }
            guard values.count == images else { return nil }
            out.append(values)
        }
        return out
    }
}
