import Foundation

/// The fast engine: batch norm folded, activations blocked (`nChw16c`, or `nChw8c` when
/// a width is not a multiple of 16 or the CPU lacks AVX-512), direct convolutions from oneDNN with bias, ReLU and
/// the residual add fused (the shortcut is written into the destination first, then
/// conv2 accumulates into it), the batch processed in chunks of ``chunkSize`` images.
///
/// Gates: a dropped identity block costs nothing; a scaled gate g scales conv2's weights
/// and bias (prepared once per block and value); with per-example gates each block runs
/// only on the examples that keep it, grouped by gate value and gathered into
/// consecutive rows.
struct FusedEngine: EvaluationEngine {
    let network: Network
    let threads: Int
    let dnnl: DNNL

    /// Images per chunk: the unit a worker thread takes. Small enough that two workers
    /// balance on a batch of 64 and a chunk's activations stay in cache (16 x 16 x 28 x 28
    /// floats is 0.8 MiB); convolutions of any size run as pieces of 1, 2, 4, ... images,
    /// so a bounded set of primitives serves every batch and group size.
    static let chunkSize = 16

    func logits(_ batch: ImageBatch, gates: Gates) -> [Float] {
        let classes = network.architecture.numClasses
        var output = [Float](repeating: 0, count: batch.count * classes)
        let network = network
        output.withUnsafeMutableBufferPointer { out in
            batch.pixels.withUnsafeBufferPointer { pixels in
                let io = ChunkIO(pixels: pixels.baseAddress!, logits: [out.baseAddress!])
                dnnl.forEachChunk(count: batch.count, chunk: Self.chunkSize, threads: threads,
                                  start: { FusedPass(worker: $0, network: network, batch: batch) }) { pass, range in
                    pass.forward(pixels: io.pixels + range.lowerBound * batch.imageSize, rows: range.count, gates: gates,
                                 firstExample: range.lowerBound, logits: io.logits[0] + range.lowerBound * classes)
                }
            }
        }
        return output
    }

    func logits(_ batch: ImageBatch, configurations: [[Float]]) -> [[Float]] {
        guard !configurations.isEmpty else { return [] }
        let classes = network.architecture.numClasses
        let network = network
        let results = configurations.map { _ in ActivationBuffer(capacity: batch.count * classes) }
        batch.pixels.withUnsafeBufferPointer { pixels in
            let io = ChunkIO(pixels: pixels.baseAddress!, logits: results.map(\.pointer))
            let trie = PrefixTrie(configurations)
            dnnl.forEachChunk(count: batch.count, chunk: Self.chunkSize, threads: threads,
                              start: { FusedPass(worker: $0, network: network, batch: batch) }) { pass, range in
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
    case conv1(Int), conv2(Int), conv3(Int), projection(Int)
}

/// A network's weights in oneDNN's formats, by layer and gate scale, shared by the
/// workers of every pass on the network.
final class FusedWeightsCache: @unchecked Sendable {
    private struct Key: Hashable {
        var layer: LayerID
        var scale: UInt32
    }

    private var entries: [Key: [PreparedWeights]] = [:]
    private var scaledEntries = 0
    private let lock = NSLock()

    func weights(_ conv: Convolution, layer: LayerID, scale: Float, for primitive: ConvolutionPrimitive,
                 worker: DNNL.Worker) -> PreparedWeights {
        lock.lock()
        defer { lock.unlock() }
        let key = Key(layer: layer, scale: scale.bitPattern)
        if let found = entries[key]?.first(where: { $0.fits(primitive.weightsDescriptor) }) { return found }
        if scale != 1 {
            // Scaled copies (p_l, 1/p_l, ...) are bounded: forget them all past a limit.
            if scaledEntries >= 256 {
                entries = entries.filter { $0.key.scale == Float(1).bitPattern }
                scaledEntries = 0
            }
            scaledEntries += 1
        }
        let prepared = worker.prepareWeights(conv, scale: scale, for: primitive)
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
    /// The output of each stem convolution (the last equals `shapes[0]` without max pooling).
    let stemShapes: [BlockedShape]
    let inputChannels: Int, inputHeight: Int, inputWidth: Int
    let chunk: Int
    private let capacity: Int
    private let hidden: UnsafeMutablePointer<Float>
    /// A bottleneck's second hidden activation.
    private let inner: UnsafeMutablePointer<Float>
    /// Pre-activated block input (preact), a stem convolution's output (deep stem), or a
    /// pooled block input (average-pool projections): never two at once.
    private let activated: UnsafeMutablePointer<Float>
    private let gathered: UnsafeMutablePointer<Float>
    private let gatheredOut: UnsafeMutablePointer<Float>
    private var spare: [UnsafeMutablePointer<Float>] = []
    /// Where the stem's input is blocked first, when oneDNN has no JIT kernel for plain input.
    private let blockedImages: (buffer: UnsafeMutablePointer<Float>, shape: BlockedShape)?

    init(worker: DNNL.Worker, network: Network, batch: ImageBatch) {
        self.worker = worker
        self.network = network
        let stem = network.stem
        let widths = network.stemLayers.map(\.outChannels) + network.blocks.flatMap { [$0.spec.outChannels, $0.spec.midChannels] }
        let block = worker.dnnl.widestBlock == 16 && widths.allSatisfy { $0 % 16 == 0 } ? 16 : 8
        var (h, w) = (batch.height, batch.width)
        stemShapes = network.stemLayers.map { conv in
            (h, w) = (conv.outputSize(h), conv.outputSize(w))
            return BlockedShape(channels: conv.outChannels, height: h, width: w, block: block)
        }
        let pooled = network.stemOutputSize(height: batch.height, width: batch.width)
        var shapes = [BlockedShape(channels: stem.outChannels, height: pooled.height, width: pooled.width, block: block)]
        var largest = max(stemShapes.map(\.rowSize).max() ?? 0, shapes[0].rowSize)
        for b in network.blocks {
            let last = shapes[shapes.count - 1]
            let next = BlockedShape(channels: b.spec.outChannels, height: b.outputSize(last.height),
                                    width: b.outputSize(last.width), block: block)
            for hidden in Self.hiddenShapes(b, input: last, output: next) { largest = max(largest, hidden.rowSize) }
            largest = max(largest, next.rowSize)
            shapes.append(next)
        }
        self.shapes = shapes
        (inputChannels, inputHeight, inputWidth) = (batch.channels, batch.height, batch.width)
        chunk = min(FusedEngine.chunkSize, max(batch.count, 1))
        capacity = chunk * largest
        (hidden, inner, activated, gathered, gatheredOut) = (worker.buffer(capacity), worker.buffer(capacity), worker.buffer(capacity),
                                                             worker.buffer(capacity), worker.buffer(capacity))
        // oneDNN's SSE4.1 kernels do not read plain NCHW images into blocked outputs (its
        // reference convolution would, 10x slower than the whole rest of the network), so
        // there the images are blocked first and the stem reads blocked input like any layer.
        let blockedInput = BlockedShape(channels: batch.channels, height: batch.height, width: batch.width, block: block)
        let (dnnl, firstOut, rowLimit) = (worker.dnnl, stemShapes[0], chunk)
        let stemPostOp: ConvolutionShape.PostOp = network.stemReLU ? .relu : .none
        let pieces = sequence(first: 1) { $0 * 2 <= rowLimit ? $0 * 2 : nil }  // what convolve runs
        if batch.count > 0, let first = network.stemLayers.first, pieces.contains(where: { rows in
            dnnl.primitive(Self.shape(first, postOp: stemPostOp, inShape: blockedInput, plainInput: true,
                                      outShape: firstOut, rows: rows)).implementation.hasPrefix("ref")
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
        BlockedKernels.head(network, input: x, shape: shapes[shapes.count - 1], rows: n, logits: logits)
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

    /// The stem on `n` images in NCHW: its convolutions (a deep stem's first two write
    /// `inner` and `activated`), then max pooling through `hidden` when the stem has it.
    func stem(_ pixels: UnsafePointer<Float>, rows n: Int, into output: UnsafeMutablePointer<Float>) {
        var source = pixels, row = inputChannels * inputHeight * inputWidth
        var inShape = BlockedShape(channels: inputChannels, height: inputHeight, width: inputWidth, block: shapes[0].block)
        var plain = true
        if let (buffer, shape) = blockedImages {
            BlockedKernels.block(planar: pixels, rows: n, into: buffer, shape: shape)
            (source, row, plain) = (UnsafePointer(buffer), shape.rowSize, false)
        }
        for (i, conv) in network.stemLayers.enumerated() {
            let last = i == network.stemLayers.count - 1
            let target = last ? (network.stemMaxPool ? hidden : output) : (i % 2 == 0 ? inner : activated)
            convolve(conv, layer: .stem(i), scale: 1, postOp: network.stemReLU ? .relu : .none, input: source, inputRow: row,
                     inShape: inShape, plainInput: plain && i == 0, output: target, outShape: stemShapes[i], rows: n)
            (source, inShape, row) = (UnsafePointer(target), stemShapes[i], stemShapes[i].rowSize)
        }
        if network.stemMaxPool {
            BlockedKernels.maxPool(hidden, inShape: inShape, output: output, outShape: shapes[0], rows: n)
        }
    }

    /// The shapes inside block `b`'s residual branch: after conv1, and (bottlenecks) after conv2.
    static func hiddenShapes(_ b: ResidualBlock, input: BlockedShape, output: BlockedShape) -> [BlockedShape] {
        let first = BlockedShape(channels: b.conv1.outChannels, height: b.conv1.outputSize(input.height),
                                 width: b.conv1.outputSize(input.width), block: output.block)
        guard b.conv3 != nil else { return [first] }
        return [first, BlockedShape(channels: b.conv2.outChannels, height: output.height, width: output.width, block: output.block)]
    }

    /// Block `l` with gate `g` on `n` rows: output = post(shortcut(input) + g * residual(input)).
    /// `output` may be `input` for an identity block (the add then happens in place).
    func step(_ l: Int, gate g: Float, input x: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>, rows n: Int) {
        let block = network.blocks[l]
        let inShape = shapes[l], outShape = shapes[l + 1]
        let index = block.spec.index
        let preact = block.preNorm != nil
        var source = UnsafePointer(x)
        if let norm = block.preNorm, g != 0 || block.isProjection {
            BlockedKernels.affineReLU(norm, input: x, output: activated, rows: n, shape: inShape)
            source = UnsafePointer(activated)
        }
        switch block.shortcut {
        case .identity:
            if y != x { y.update(from: x, count: n * outShape.rowSize) }
        case .zeroPadded(let stride, let averagePool, let before, _):
            BlockedKernels.zeroPaddedShortcut(input: x, inShape: inShape, output: y, outShape: outShape, rows: n,
                                              stride: stride, averagePool: averagePool, padBefore: before)
        case .projection(let conv):
            convolve(conv, layer: .projection(index), scale: 1, postOp: !preact && g == 0 ? .relu : .none,
                     input: source, inputRow: inShape.rowSize, inShape: inShape, plainInput: false,
                     output: y, outShape: outShape, rows: n)
        case .pooledProjection(let conv):
            let pooledShape = BlockedShape(channels: inShape.channels, height: outShape.height, width: outShape.width,
                                           block: inShape.block)
            BlockedKernels.averagePool2x2(x, inShape: inShape, output: activated, outShape: pooledShape, rows: n)
            convolve(conv, layer: .projection(index), scale: 1, postOp: g == 0 ? .relu : .none,
                     input: activated, inputRow: pooledShape.rowSize, inShape: pooledShape, plainInput: false,
                     output: y, outShape: outShape, rows: n)
        }
        guard g != 0 else { return }
        let hiddenShapes = Self.hiddenShapes(block, input: inShape, output: outShape)
        let hiddenShape = hiddenShapes[0]
        convolve(block.conv1, layer: .conv1(index), scale: 1, postOp: .relu, input: source, inputRow: inShape.rowSize,
                 inShape: inShape, plainInput: false, output: hidden, outShape: hiddenShape, rows: n)
        let addOp: ConvolutionShape.PostOp = block.reluAfterAdd ? .sumReLU : .sum
        if let conv3 = block.conv3 {
            let innerShape = hiddenShapes[1]
            convolve(block.conv2, layer: .conv2(index), scale: 1, postOp: .relu, input: hidden, inputRow: hiddenShape.rowSize,
                     inShape: hiddenShape, plainInput: false, output: inner, outShape: innerShape, rows: n)
            convolve(conv3, layer: .conv3(index), scale: g, postOp: addOp, input: inner, inputRow: innerShape.rowSize,
                     inShape: innerShape, plainInput: false, output: y, outShape: outShape, rows: n)
        } else {
            convolve(block.conv2, layer: .conv2(index), scale: g, postOp: addOp,
                     input: hidden, inputRow: hiddenShape.rowSize, inShape: hiddenShape, plainInput: false,
                     output: y, outShape: outShape, rows: n)
        }
    }

    /// One convolution over `n` rows, as pieces whose sizes are powers of two.
    func convolve(_ conv: Convolution, layer: LayerID, scale: Float, postOp: ConvolutionShape.PostOp,
                  input: UnsafePointer<Float>, inputRow: Int, inShape: BlockedShape, plainInput: Bool,
                  output: UnsafeMutablePointer<Float>, outShape: BlockedShape, rows n: Int) {
        var start = 0
        while start < n {
            let piece = 1 << (Int.bitWidth - 1 - (n - start).leadingZeroBitCount)
            let primitive = worker.dnnl.primitive(Self.shape(conv, postOp: postOp, inShape: inShape, plainInput: plainInput,
                                                             outShape: outShape, rows: piece))
            let weights = network.fusedWeights.weights(conv, layer: layer, scale: scale, for: primitive, worker: worker)
            worker.execute(primitive, weights: weights, source: input + start * inputRow,
                            destination: output + start * outShape.rowSize)
            start += piece
        }
    }

    /// The primitive shape of `conv` on `rows` images: channels padded to whole blocks,
    /// except a plain NCHW input's.
    static func shape(_ conv: Convolution, postOp: ConvolutionShape.PostOp, inShape: BlockedShape, plainInput: Bool,
                      outShape: BlockedShape, rows: Int) -> ConvolutionShape {
        ConvolutionShape(batch: rows, inChannels: plainInput ? conv.inChannels : inShape.channelBlocks * inShape.block,
                         outChannels: outShape.channelBlocks * outShape.block, height: inShape.height, width: inShape.width,
                         kernel: conv.kernel, stride: conv.stride, padding: conv.padding, block: outShape.block,
                         plainSource: plainInput, postOp: postOp)
    }
}

extension ResidualBlock {
    var isIdentity: Bool {
        if case .identity = shortcut { return true }
        return false
    }

    var isProjection: Bool {
        if case .projection = shortcut { return true }
        return false
    }
}
