import DepthLensModel

/// The activation buffers the fused engine plans for one pass over a batch: their sizes
/// per image (by role, from the network's shapes at the input size), the images per chunk
/// and the number of workers, and so the bytes a pass allocates. Computed, not measured:
/// the engine allocates exactly these buffers (plus, for the configurations API, one
/// block-output buffer per branching level of the prefix trie, and for per-example gates
/// two more block-output buffers, both on first use).
struct ActivationPlan: Equatable {
    /// Channel block of the activations (16 or 8).
    let block: Int
    /// Floats per image of the largest block output (the stem's included): the two
    /// buffers a pass alternates between.
    let blockOutputRow: Int
    /// Floats per image of the largest output that a layer writes inside the stem, a
    /// branch, a shortcut, a pre-activation or the head (the two scratch buffers).
    let scratchRow: Int
    /// Whether a third scratch buffer is needed: pre-activated block inputs, or a stem or
    /// head of three layers or more (which alternate through it).
    let needsThirdScratch: Bool
    /// Images per chunk, the unit a worker takes.
    let chunk: Int
    /// Worker threads of the pass.
    let workers: Int

    /// Bytes of one image's buffers in one worker.
    var bytesPerImage: Int {
        (2 * blockOutputRow + (needsThirdScratch ? 3 : 2) * scratchRow) * MemoryLayout<Float>.size
    }

    /// Bytes of activation buffers a pass of ``FusedEngine/logits(_:gates:)`` allocates.
    var bytes: Int { workers * chunk * bytesPerImage }

    /// Most images per chunk: small enough that two workers balance on a batch of 64
    /// and a chunk's activations stay in cache (16 x 16 x 28 x 28 floats is 0.8 MiB);
    /// convolutions of any size run as pieces of 1, 2, 4, ... images, so a bounded set of
    /// primitives serves every batch and group size.
    static let maximumChunk = 16
    /// Bytes of one activation of a chunk at most, which bounds the chunk for large
    /// images (one image of a 224 x 224 ResNet's 64 x 112 x 112 stem output is 3.2 MB:
    /// chunks of one). Measured on ResNet-50 at 224 x 224 (CPU time per image, one
    /// thread): chunks of 1, 2 and 4 images cost the same, 16 cost 11% more.
    static let chunkActivationBytes = 2 << 20
    /// Bytes of activation buffers a pass may plan, all workers together (the chunk
    /// shrinks to stay within it, down to one image).
    static let budgetBytes = 64 << 20

    /// The plan for `count` images of `height` x `width` on `threads` threads, with
    /// channel blocks of `widestBlock` where every width allows (else 8).
    init(network: Network, count: Int, channels: Int, height: Int, width: Int, threads: Int, widestBlock: Int) {
        let input = ActivationShape(channels: channels, height: height, width: width)
        let stem = Layer.shapes(network.stemLayers, from: input)
        var outputs = [stem.last ?? input], inside: [ActivationShape] = [], every = stem
        var third = network.stemLayers.count >= 3 || network.head.pooling.count >= 3
        for b in network.blocks {
            let x = outputs[outputs.count - 1]
            let activated = Layer.shapes(b.preActivation, from: x)
            let source = activated.last ?? x
            let branch = Layer.shapes(b.branch, from: source)
            let shortcut = Layer.shapes(b.shortcut, from: b.shortcutReadsPreActivated ? source : x)
            inside += activated + branch.dropLast() + shortcut.dropLast()
            every += activated + branch + shortcut
            third = third || !b.preActivation.isEmpty
            outputs.append(b.outputShape(x))
        }
        inside += stem.dropLast() + Layer.shapes(network.head.pooling, from: outputs[outputs.count - 1])
        let block = widestBlock == 16 && (every + outputs).allSatisfy({ $0.channels % 16 == 0 }) ? 16 : 8
        func row(_ shape: ActivationShape) -> Int { BlockedShape(shape, block: block).rowSize }
        self.block = block
        blockOutputRow = outputs.map(row).max() ?? 0
        scratchRow = max(inside.map(row).max() ?? 0, 1)
        needsThirdScratch = third
        let largest = max(blockOutputRow, scratchRow) * MemoryLayout<Float>.size
        let perImage = (2 * blockOutputRow + (third ? 3 : 2) * scratchRow) * MemoryLayout<Float>.size
        let threads = max(threads, 1)
        let balanced = (count + threads - 1) / threads
        let workersAtMost = max(1, min(threads, count))
        let byCache = Self.chunkActivationBytes / max(largest, 1)
        let byBudget = Self.budgetBytes / max(workersAtMost * perImage, 1)
        chunk = max(1, min(Self.maximumChunk, byCache, byBudget, balanced))
        workers = max(1, min(threads, (count + chunk - 1) / chunk))
    }
}
