import DepthLensFormats
import DepthLensModel
import Foundation

/// The fast engine: batch norm folded, activations blocked (`nChw16c`, or `nChw8c` when
/// a width is not a multiple of 16 or the CPU lacks AVX-512), direct convolutions from oneDNN with bias, ReLU and
/// the residual add fused (the shortcut is written into the destination first, then
/// conv2 accumulates into it), the batch processed in chunks sized by ``plan(_:)``.
///
/// Gates: a dropped identity block costs nothing; a scaled gate g scales conv2's weights
/// and bias (prepared once per block and value); with per-example gates each block runs
/// only on the examples that keep it, grouped by gate value and gathered into
/// consecutive rows.
struct FusedEngine: EvaluationEngine {
    let network: Network
    let threads: Int
    let dnnl: DNNL

    /// Why the fused engine cannot run `network`, or nil when it can: it lowers the
    /// ResNets' layers only (convolutions, batch norm, ReLU, pooling, option A), with
    /// every residual branch ending in a convolution (into which the gate and the add
    /// are fused) and the ResNet head.
    static func unsupported(_ network: Network) -> String? {
        let family = network.model.family
        for block in network.blocks {
            guard case .convolution(_, relu: false) = block.branch.last else {
                return "the fast engine fuses the gate into a branch's last convolution, and \(family)'s block \(block.index) ends otherwise"
            }
        }
        return nil
    }

    /// The buffers, chunk and workers of a pass over `batch` (see ``ActivationPlan``):
    /// chunks of at most 16 images, fewer where one image's activations are large (a
    /// 224 x 224 ResNet: one image a chunk) or the plan would exceed its budget, and no
    /// more than gives every worker a chunk. Results do not depend on it.
    func plan(_ batch: ImageBatch) -> ActivationPlan {
        ActivationPlan(network: network, count: batch.count, channels: batch.channels, height: batch.height,
                       width: batch.width, threads: threads, widestBlock: dnnl.widestBlock)
    }

    func logits(_ batch: ImageBatch, gates: Gates) -> [Float] {
        let classes = network.head.classes
        var output = [Float](repeating: 0, count: batch.count * classes)
        let network = network
        output.withUnsafeMutableBufferPointer { out in
            batch.pixels.withUnsafeBufferPointer { pixels in
                let io = ChunkIO(pixels: pixels.baseAddress!, logits: [out.baseAddress!])
                let plan = plan(batch)
                dnnl.forEachChunk(count: batch.count, chunk: plan.chunk, threads: threads,
                                  start: { FusedPass(worker: $0, network: network, batch: batch, plan: plan) }) { pass, range in
                    pass.forward(pixels: io.pixels + range.lowerBound * batch.imageSize, rows: range.count, gates: gates,
                                 firstExample: range.lowerBound, logits: io.logits[0] + range.lowerBound * classes)
                }
            }
        }
        return output
    }

    func logits(_ batch: ImageBatch, configurations: [[Float]]) -> [[Float]] {
        guard !configurations.isEmpty else { return [] }
        let classes = network.head.classes
        let network = network
        let results = configurations.map { _ in ActivationBuffer(capacity: batch.count * classes) }
        batch.pixels.withUnsafeBufferPointer { pixels in
            let io = ChunkIO(pixels: pixels.baseAddress!, logits: results.map(\.pointer))
            let trie = PrefixTrie(configurations)
            let plan = plan(batch)
            dnnl.forEachChunk(count: batch.count, chunk: plan.chunk, threads: threads,
                              start: { FusedPass(worker: $0, network: network, batch: batch, plan: plan) }) { pass, range in
                pass.evaluate(trie, pixels: io.pixels + range.lowerBound * batch.imageSize, rows: range.count) { c, logits in
                    (io.logits[c] + range.lowerBound * classes).update(from: logits, count: range.count * classes)
                }
            }
        }
        return results.map { Array(UnsafeBufferPointer(start: $0.pointer, count: batch.count * classes)) }
    }
}

/// The images and the logits of a pass, shared by its workers; each writes only the
/// rows of its own chunks.
private struct ChunkIO: @unchecked Sendable {
    let pixels: UnsafePointer<Float>
    let logits: [UnsafeMutablePointer<Float>]
}

/// Which convolution of a network; prepared weights are cached under it. Blocks are
/// named by their index in the checkpoint, so a reordered network shares the cache.
enum LayerID: Hashable {
    case stem(Int)
    /// Layer i of block l's pre-activation, branch or shortcut.
    case preActivation(block: Int, Int), branch(block: Int, Int), shortcut(block: Int, Int)
}

/// A network's weights in oneDNN's formats, by layer and gate scale, shared by the
/// workers of every pass on the network.
final class FusedWeightsCache: @unchecked Sendable {
    private struct Key: Hashable {
        var layer: LayerID
        var scale: UInt32
        /// Which half of the output channels (a convolution split across two threads), or
        /// 0 for the whole.
        var part: Int
    }

    private var entries: [Key: [PreparedWeights]] = [:]
    private var scaledEntries = 0
    private let lock = NSLock()

    /// `part` 1 or 2: the first or second half of the output channels (see
    /// ``Convolution/half(_:)``); 0: all of them.
    func weights(_ conv: Convolution, layer: LayerID, scale: Float, part: Int = 0, for primitive: ConvolutionPrimitive,
                 worker: DNNL.Worker) -> PreparedWeights {
        lock.lock()
        defer { lock.unlock() }
        let key = Key(layer: layer, scale: scale.bitPattern, part: part)
        if let found = entries[key]?.first(where: { $0.fits(primitive.weightsDescriptor) }) { return found }
        if scale != 1 {
            // Scaled copies (p_l, 1/p_l, ...) are bounded: forget them all past a limit.
            if scaledEntries >= 256 {
                entries = entries.filter { $0.key.scale == Float(1).bitPattern }
                scaledEntries = 0
            }
            scaledEntries += 1
        }
        let prepared = worker.prepareWeights(part == 0 ? conv : conv.half(part), scale: scale, for: primitive)
        entries[key, default: []].append(prepared)
        return prepared
    }
}

/// One worker's share of a pass: the shapes, scratch buffers and layer calls.
final class FusedPass {
    let worker: DNNL.Worker
    let network: Network
    /// Activation shape after the stem (index 0) and after each block (index l + 1).
    let shapes: [BlockedShape]
    let inputChannels: Int, inputHeight: Int, inputWidth: Int
    let chunk: Int
    /// Floats of a block-output buffer (`take()`, gathered rows) and of a scratch buffer.
    private let capacity: Int, scratchCapacity: Int
    private let hidden: UnsafeMutablePointer<Float>
    /// The second scratch activation of a branch, shortcut or stem (after `hidden`).
    private let inner: UnsafeMutablePointer<Float>
    /// The pre-activated block input (and a deep stem's or a head's third scratch),
    /// allocated on first use.
    private lazy var activated: UnsafeMutablePointer<Float> = worker.buffer(scratchCapacity)
    /// Rows gathered by gate value (per-example gates only), allocated on first use.
    private lazy var gathered: UnsafeMutablePointer<Float> = worker.buffer(capacity)
    private lazy var gatheredOut: UnsafeMutablePointer<Float> = worker.buffer(capacity)
    private var spare: [UnsafeMutablePointer<Float>] = []
    /// Where the stem's input is blocked first, when oneDNN has no JIT kernel for plain input.
    private let blockedImages: (buffer: UnsafeMutablePointer<Float>, shape: BlockedShape)?
    /// A vision transformer's attention core (oneDNN matmuls and softmax), made on first use.
    private lazy var attentionCore = AttentionCore(engine: worker.dnnl.engine)

    init(worker: DNNL.Worker, network: Network, batch: ImageBatch, plan: ActivationPlan) {
        self.worker = worker
        self.network = network
        let input = ActivationShape(channels: batch.channels, height: batch.height, width: batch.width)
        let stemShapes = Layer.shapes(network.stemLayers, from: input)
        var blockShapes = [stemShapes.last ?? input]
        for b in network.blocks { blockShapes.append(b.outputShape(blockShapes[blockShapes.count - 1])) }
        let block = plan.block
        shapes = blockShapes.map { BlockedShape($0, block: block) }
        (inputChannels, inputHeight, inputWidth) = (batch.channels, batch.height, batch.width)
        let chunk = plan.chunk
        self.chunk = chunk
        capacity = chunk * plan.blockOutputRow
        scratchCapacity = chunk * plan.scratchRow
        (hidden, inner) = (worker.buffer(scratchCapacity), worker.buffer(scratchCapacity))
        // oneDNN's SSE4.1 kernels do not read plain NCHW images into blocked outputs (its
        // reference convolution would, 10x slower than the whole rest of the network), so
        // there the images are blocked first and the stem reads blocked input like any layer.
        let blockedInput = BlockedShape(input, block: block)
        let (dnnl, rowLimit) = (worker.dnnl, chunk)
        let pieces = sequence(first: 1) { $0 * 2 <= rowLimit ? $0 * 2 : nil }  // what convolve runs
        if batch.count > 0, case .convolution(let first, let relu) = network.stemLayers.first, pieces.contains(where: { rows in
            dnnl.primitive(Self.shape(first, postOp: relu ? .relu : .none, inShape: blockedInput, plainInput: true,
                                      outShape: BlockedShape(stemShapes[0], block: block), rows: rows)).implementation.hasPrefix("ref")
        }) {
            blockedImages = (worker.buffer(chunk * blockedInput.rowSize), blockedInput)
        } else {
            blockedImages = nil
        }
    }

    /// An activation buffer for one chunk, until ``give(_:)`` returns it.
    func take() -> UnsafeMutablePointer<Float> { spare.popLast() ?? worker.buffer(capacity) }
    func give(_ buffer: UnsafeMutablePointer<Float>) { spare.append(buffer) }

    // MARK: Forward with one gate per block and example

    func forward(pixels: UnsafePointer<Float>, rows n: Int, gates: Gates, firstExample: Int,
                 logits: UnsafeMutablePointer<Float>) {
        var x = take(), y = take()
        defer { give(x); give(y) }
        stem(pixels, rows: n, into: x)
        for (l, block) in network.blocks.enumerated() {
            let identity = block.isIdentity
            let groups = Self.groups(gates, block: l, rows: n, firstExample: firstExample)
            if groups.count == 1 {
                let g = groups[0].gate
                if identity {
                    if g != 0 { step(l, gate: g, input: x, output: x, rows: n) }
                } else {
                    step(l, gate: g, input: x, output: y, rows: n)
                    swap(&x, &y)
                }
                continue
            }
            let inRow = shapes[l].rowSize, outRow = shapes[l + 1].rowSize
            for (g, members) in groups where !(identity && g == 0) {
                BlockedKernels.gather(x, rows: members, rowSize: inRow, into: gathered)
                if identity {
                    step(l, gate: g, input: gathered, output: gathered, rows: members.count)
                    BlockedKernels.scatter(gathered, rows: members, rowSize: outRow, into: x)
                } else {
                    step(l, gate: g, input: gathered, output: gatheredOut, rows: members.count)
                    BlockedKernels.scatter(gatheredOut, rows: members, rowSize: outRow, into: y)
                }
            }
            if !identity { swap(&x, &y) }
        }
        head(x, rows: n, logits: logits)
    }

    /// The head on `n` rows of the last activation: a transformer's own pooling layers
    /// first (to C x 1 x 1, where the ResNets' global average pooling is the identity).
    func head(_ x: UnsafeMutablePointer<Float>, rows n: Int, logits: UnsafeMutablePointer<Float>) {
        var (input, shape) = (UnsafePointer(x), shapes[shapes.count - 1])
        if !network.head.pooling.isEmpty {
            shape = run(network.head.pooling, id: { .stem(-1 - $0) }, input: x, inShape: shape, output: hidden, rows: n,
                        scratch: (inner, activated))
            input = UnsafePointer(hidden)
        }
        BlockedKernels.head(network.head, input: input, shape: shape, rows: n, logits: logits)
    }

    /// The rows of a chunk grouped by their gate at `block`, in order of first appearance.
    static func groups(_ gates: Gates, block: Int, rows: Int, firstExample: Int) -> [(gate: Float, rows: [Int])] {
        switch gates {
        case .allOn: return [(1, Array(0..<rows))]
        case .shared(let vector): return [(vector[block] == 0 ? 0 : vector[block], Array(0..<rows))]
        case .perExample(let vectors):
            var groups: [(gate: Float, rows: [Int])] = []
            var index: [UInt32: Int] = [:]
            for r in 0..<rows {
                var g = vectors[firstExample + r][block]
                if g == 0 { g = 0 }  // one group for +0 and -0
                if let i = index[g.bitPattern] {
                    groups[i].rows.append(r)
                } else {
                    index[g.bitPattern] = groups.count
                    groups.append((g, [r]))
                }
            }
            return groups
        }
    }

    // MARK: Layers

    /// The stem on `n` images in NCHW, through the `inner` and `activated` scratch buffers.
    func stem(_ pixels: UnsafePointer<Float>, rows n: Int, into output: UnsafeMutablePointer<Float>) {
        var source = pixels, row = inputChannels * inputHeight * inputWidth
        var inShape = BlockedShape(ActivationShape(channels: inputChannels, height: inputHeight, width: inputWidth),
                                   block: shapes[0].block)
        var plain = true
        if let (buffer, shape) = blockedImages {
            BlockedKernels.block(planar: pixels, rows: n, into: buffer, shape: shape)
            (source, row, plain, inShape) = (UnsafePointer(buffer), shape.rowSize, false, shape)
        }
        run(network.stemLayers, id: LayerID.stem, input: source, inputRow: row, inShape: inShape, plainInput: plain,
            output: output, rows: n, scratch: (inner, activated))
    }

    /// Block `l` with gate `g` on `n` rows: output = post(shortcut(input) + g * residual(input)).
    /// `output` may be `input` for an identity block (the add then happens in place).
    func step(_ l: Int, gate g: Float, input x: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>, rows n: Int) {
        let block = network.blocks[l]
        let inShape = shapes[l], index = block.index
        var source = UnsafePointer(x), sourceShape = inShape
        if !block.preActivation.isEmpty, g != 0 || (block.shortcutReadsPreActivated && !block.isIdentity) {
            sourceShape = run(block.preActivation, id: { .preActivation(block: index, $0) }, input: x, inShape: inShape,
                              output: activated, rows: n, scratch: (hidden, inner))
            source = UnsafePointer(activated)
        }
        if block.isIdentity {
            if y != x { y.update(from: x, count: n * inShape.rowSize) }
        } else {
            // With the branch dropped, a projection's convolution takes the ReLU after the add.
            let fuseReLU = g == 0 && block.reluAfterAdd
            let (input, shape) = block.shortcutReadsPreActivated ? (source, sourceShape) : (UnsafePointer(x), inShape)
            run(block.shortcut, id: { .shortcut(block: index, $0) }, input: input, inShape: shape, output: y, rows: n,
                scratch: (hidden, inner), last: fuseReLU ? (1, .relu) : nil)
            if fuseReLU, !block.shortcutEndsInConvolution {
                BlockedKernels.relu(y, into: y, count: n * shapes[l + 1].rowSize)
            }
        }
        guard g != 0 else { return }
        // The gate scales the last convolution's weights and bias; the add (and ReLU) are its post-op.
        run(block.branch, id: { .branch(block: index, $0) }, input: source, inShape: sourceShape, output: y, rows: n,
            scratch: (hidden, inner), last: (g, block.reluAfterAdd ? .sumReLU : .sum))
    }

    /// Runs `layers` on `n` rows from `input` into `output`, the layers in between
    /// alternating between the two scratch buffers, and returns the output shape. A last
    /// convolution takes `last`'s scale and post-op in place of its own ReLU.
    @discardableResult
    func run(_ layers: [Layer], id: (Int) -> LayerID, input: UnsafePointer<Float>, inputRow: Int? = nil, inShape: BlockedShape,
             plainInput: Bool = false, output: UnsafeMutablePointer<Float>, rows n: Int,
             scratch: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>),
             last: (scale: Float, postOp: ConvolutionShape.PostOp)? = nil) -> BlockedShape {
        var (source, shape, row) = (input, inShape, inputRow ?? inShape.rowSize)
        var i = 0, written = 0
        while i < layers.count {
            let layer = layers[i]
            // A GELU right after a convolution is its post-op (a pointwise linear layer's, in an MLP).
            var fusesGELU = false
            if case .convolution(_, relu: false) = layer, i + 1 < layers.count, case .gelu = layers[i + 1],
               !(i + 1 == layers.count - 1 && last != nil) {
                fusesGELU = true
            }
            let end = i + (fusesGELU ? 1 : 0)
            let isLast = end == layers.count - 1
            let target = isLast ? output : (written % 2 == 0 ? scratch.0 : scratch.1)
            let outShape = BlockedShape(layer.outputShape(shape.activation), block: shape.block)
            switch layer {
            case .convolution(let conv, let relu):
                let (scale, postOp) = isLast && last != nil ? last! : (1, relu ? .relu : fusesGELU ? .gelu : .none)
                convolve(conv, layer: id(i), scale: scale, postOp: postOp, input: source, inputRow: row, inShape: shape,
                         plainInput: plainInput && i == 0, output: target, outShape: outShape, rows: n)
            case .affine(let norm, let relu):
                BlockedKernels.affine(norm, relu: relu, input: source, output: target, rows: n, shape: shape)
            case .relu:
                BlockedKernels.relu(source, into: target, count: n * shape.rowSize)
            case .maxPool:
                BlockedKernels.maxPool(source, inShape: shape, output: target, outShape: outShape, rows: n)
            case .averagePool2x2:
                BlockedKernels.averagePool2x2(source, inShape: shape, output: target, outShape: outShape, rows: n)
            case .zeroChannels(let z):
                BlockedKernels.zeroPaddedShortcut(input: source, inShape: shape, output: target, outShape: outShape, rows: n,
                                                  stride: z.stride, averagePool: z.averagePool, padBefore: z.before)
            case .transformer(.attention(let heads, let scale)):
                attentionCore.run(heads: heads, scale: scale, input: source, inShape: shape, output: target,
                                  outShape: outShape, rows: n)
            case .transformer(let t):
                BlockedKernels.transformer(t, input: source, inShape: shape, output: target, outShape: outShape, rows: n)
            case .layerNorm(let norm):
                BlockedKernels.layerNorm(norm, input: source, output: target, rows: n, shape: shape)
            case .gelu:
                BlockedKernels.gelu(source, into: target, count: n * shape.rowSize)
            }
            (source, shape, row) = (UnsafePointer(target), outShape, outShape.rowSize)
            i = end + 1
            written += 1
        }
        if layers.isEmpty, output != UnsafeMutablePointer(mutating: input) { output.update(from: input, count: n * row) }
        return shape
    }

    /// One convolution over `n` rows, as pieces whose sizes are powers of two; a piece of
    /// one image is split by output channels between this worker and its helper lane
    /// when it has one (a batch smaller than the thread count).
    func convolve(_ conv: Convolution, layer: LayerID, scale: Float, postOp: ConvolutionShape.PostOp,
                  input: UnsafePointer<Float>, inputRow: Int, inShape: BlockedShape, plainInput: Bool,
                  output: UnsafeMutablePointer<Float>, outShape: BlockedShape, rows n: Int) {
        var start = 0
        while start < n {
            let piece = 1 << (Int.bitWidth - 1 - (n - start).leadingZeroBitCount)
            if piece == 1, let lane = worker.helper, conv.groups == 1, conv.outChannels % (2 * outShape.block) == 0,
               conv.outChannels * conv.inChannels * conv.kernel * conv.kernel * outShape.plane >= Self.splitWork {
                // Two halves of the output channels: in nChw{8,16}c each half of one image's
                // channel blocks is one contiguous range of the destination.
                var half = outShape
                half.channels = outShape.channels / 2
                let parts = [1, 2].map { part -> (ConvolutionPrimitive, PreparedWeights) in
                    let primitive = worker.dnnl.primitive(Self.shape(conv, postOp: postOp, inShape: inShape,
                                                                     plainInput: plainInput, outShape: half, rows: 1))
                    return (primitive, network.fusedWeights.weights(conv, layer: layer, scale: scale, part: part,
                                                                    for: primitive, worker: worker))
                }
                let source = input + start * inputRow, destination = output + start * outShape.rowSize
                let second = Split(source: source, destination: destination + half.rowSize, primitive: parts[1].0,
                                   weights: parts[1].1)
                lane.run { $0.execute(second.primitive, weights: second.weights, source: second.source,
                                      destination: second.destination) }
                worker.execute(parts[0].0, weights: parts[0].1, source: source, destination: destination)
                lane.wait()
                start += 1
                continue
            }
            let primitive = worker.dnnl.primitive(Self.shape(conv, postOp: postOp, inShape: inShape, plainInput: plainInput,
                                                             outShape: outShape, rows: piece))
            let weights = network.fusedWeights.weights(conv, layer: layer, scale: scale, for: primitive, worker: worker)
            worker.execute(primitive, weights: weights, source: input + start * inputRow,
                            destination: output + start * outShape.rowSize)
            start += piece
        }
    }

    /// Multiply-adds of one image's convolution from which it is split between a worker and
    /// its helper lane (about 80 us at 100 GFLOP/s; every convolution of a 224 x 224
    /// ResNet-50 has at least 25 M, a CIFAR ResNet's 3x3 ones at most 2 M, where the
    /// wake-up would cost more than half the layer saves).
    static let splitWork = 8 << 20

    /// The primitive shape of `conv` on `rows` images: channels padded to whole blocks,
    /// except a plain NCHW input's.
    static func shape(_ conv: Convolution, postOp: ConvolutionShape.PostOp, inShape: BlockedShape, plainInput: Bool,
                      outShape: BlockedShape, rows: Int) -> ConvolutionShape {
        let outChannels = outShape.channelBlocks * outShape.block
        // A depthwise convolution's padded channels are groups of their own (with zero weights).
        precondition(conv.groups == 1 || (conv.groups == conv.inChannels && conv.groups == conv.outChannels && !plainInput),
                     "the fused engine runs ordinary and depthwise convolutions only")
        return ConvolutionShape(batch: rows, inChannels: plainInput ? conv.inChannels : inShape.channelBlocks * inShape.block,
                                outChannels: outChannels, height: inShape.height, width: inShape.width,
                                kernel: conv.kernel, stride: conv.stride, padding: conv.padding, block: outShape.block,
                                plainSource: plainInput, postOp: postOp, groups: conv.groups == 1 ? 1 : outChannels)
    }
}

/// The second half of a split convolution, handed to the helper lane.
private struct Split: @unchecked Sendable {
    let source: UnsafePointer<Float>
    let destination: UnsafeMutablePointer<Float>
    let primitive: ConvolutionPrimitive
    let weights: PreparedWeights
}

extension Convolution {
    /// The first (`part` 1) or second (2) half of the output channels, weights and bias.
    func half(_ part: Int) -> Convolution {
        var result = self
        let count = outChannels / 2, perChannel = inChannelsPerGroup * kernel * kernel
        let first = (part - 1) * count
        result.outChannels = count
        result.weight = Array(weight[(first * perChannel)..<((first + count) * perChannel)])
        result.bias = Array(bias[first..<(first + count)])
        return result
    }
}

extension ResidualBlock {
    var shortcutEndsInConvolution: Bool {
        if case .convolution = shortcut.last { return true }
        return false
    }

    /// The block's output shape for an input of `shape`.
    func outputShape(_ shape: ActivationShape) -> ActivationShape {
        if isIdentity { return shape }
        let activated = Layer.shapes(preActivation, from: shape).last ?? shape
        let source = shortcutReadsPreActivated ? activated : shape
        return Layer.shapes(shortcut, from: source).last ?? source
    }
}
