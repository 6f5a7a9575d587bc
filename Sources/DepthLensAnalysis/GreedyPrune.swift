import DepthLensEngine
import DepthLensFormats
import DepthLensModel
import DepthLensPluginAPI

/// LayerDrop's greedy pruning (Fan et al. 2019): starting from the deterministic network,
/// repeatedly delete the block whose deletion hurts a held-out split least, until `depth`
/// blocks remain. Downsampling blocks (shortcut not the identity) are never deleted.
public enum GreedyPrune {
    /// The blocks (1-based) greedy pruning deletes, in deletion order, choosing on the
    /// images of `heldOut`: lowest error, then lowest NLL, then lowest block number.
    public static func choose(_ context: AnalysisContext, heldOut: any ImageSource, depth: Int) throws -> [Int] {
        let blocks = context.gateBlocks
        let removable = blocks.filter { $0.shortcut == .identity }.map(\.index)
        let minimum = blocks.count - removable.count
        guard (minimum...blocks.count).contains(depth) else {
            throw PruneError.depthOutOfRange(depth, allowed: minimum...blocks.count,
                                             reason: "greedy pruning keeps the \(minimum) downsampling blocks")
        }
        guard let labels = try heldOut.labels(0..<heldOut.count), !labels.isEmpty else {
            throw DataSetError(source: heldOut.name, message: "greedy pruning needs labelled held-out images")
        }
        let stream = BatchStream(heldOut, batchSize: context.batchSize, labels: labels)
        var gates = context.deterministicGates
        var dropped: [Int] = []
        while blocks.count - dropped.count > depth {
            let candidates = removable.filter { !dropped.contains($0) }
            let configurations = candidates.map { block -> [Float] in
                var g = gates
                g[block - 1] = 0
                return g
            }
            var summaries = configurations.map { _ in ClassificationSummary(classes: context.checkpoint.architecture.numClasses) }
            try stream.logits(context.evaluator, configurations: configurations) { batch, logits in
                for i in summaries.indices { summaries[i].add(logits: logits[i], labels: batch.labels) }
            }
            let best = candidates.indices.min { a, b in
                let (x, y) = (summaries[a], summaries[b])
                if x.correct != y.correct { return x.correct > y.correct }
                if x.negativeLogLikelihood != y.negativeLogLikelihood { return x.negativeLogLikelihood < y.negativeLogLikelihood }
                return candidates[a] < candidates[b]
            }!
            dropped.append(candidates[best])
            gates[candidates[best] - 1] = 0
        }
        return dropped
    }
}
