import DepthLensFormats
import DepthLensModel
import Dispatch

/// The reference engine: the plain kernels of ``Kernels`` on one image at a time in CHW
/// layout, the batch split into contiguous slices across threads. It is the baseline
/// the fused engine is tested against.
struct ReferenceEngine: EvaluationEngine {
    let network: Network
    let threads: Int

    func logits(_ batch: ImageBatch, gates: Gates) -> [Float] {
        let classes = network.head.classes
        var output = [Float](repeating: 0, count: batch.count * classes)
        guard batch.count > 0, let largest = try? network.largestActivation(height: batch.height, width: batch.width)
        else { return output }
        let workers = min(threads, batch.count)
        output.withUnsafeMutableBufferPointer { out in
            batch.pixels.withUnsafeBufferPointer { pixels in
                let shared = SharedBuffers(pixels: pixels, logits: out)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let range = slice(worker, of: workers, count: batch.count)
                    var workspace = Workspace(capacity: largest)
                    for n in range {
                        forward(image: shared.pixels.baseAddress! + n * batch.imageSize, height: batch.height,
                                width: batch.width, example: n, gates: gates, workspace: &workspace,
                                logits: shared.logits.baseAddress! + n * classes)
                    }
                }
            }
        }
        return output
    }

    func logits(_ batch: ImageBatch, configurations: [[Float]]) -> [[Float]] {
        configurations.map { logits(batch, gates: .shared($0)) }
    }

    /// The first stage of the forward pass of image `example` of `batch` under `gates`
    /// whose output is not finite, or nil when its logits are finite. Runs that image
    /// alone: what ``Evaluator`` calls only once logits came out non-finite.
    func firstNonFiniteStage(example: Int, of batch: ImageBatch, gates: Gates) -> NonFiniteLogits.Stage? {
        guard let largest = try? network.largestActivation(height: batch.height, width: batch.width) else { return nil }
        var workspace = Workspace(capacity: largest)
        var logits = [Float](repeating: 0, count: network.head.classes)
        return batch.pixels.withUnsafeBufferPointer { pixels in
            logits.withUnsafeMutableBufferPointer { out in
                forward(image: pixels.baseAddress! + example * batch.imageSize, height: batch.height, width: batch.width,
                        example: example, gates: gates, workspace: &workspace, logits: out.baseAddress!, locate: true)
            }
        }
    }

    /// One image through stem, blocks and head. With `locate`, checks each stage's output
    /// and returns the first that is not finite (and stops there); otherwise returns nil.
    @discardableResult
    private func forward(image: UnsafePointer<Float>, height: Int, width: Int, example: Int, gates: Gates,
                         workspace ws: inout Workspace, logits: UnsafeMutablePointer<Float>,
                         locate: Bool = false) -> NonFiniteLogits.Stage? {
        let net = network
        var shape = ActivationShape(channels: net.model.inputChannels, height: height, width: width)
        if locate && !allFinite(image, count: shape.count) { return .input }
        shape = Self.run(net.stemLayers, input: image, shape: shape, output: ws.current, scratch: (ws.next, ws.hidden))
        if locate && !allFinite(ws.current, count: shape.count) { return .stem }
        for (l, block) in net.blocks.enumerated() {
            let g = gates.gate(block: l, example: example)
            // A dropped identity block changes nothing: its input is already post-activated.
            if g == 0 && block.isIdentity { continue }
            // The branch's input (and a pre-activation projection's): x, or pre(x).
            var activated = UnsafePointer(ws.current), activatedShape = shape
            if !block.preActivation.isEmpty, g != 0 || (block.shortcutReadsPreActivated && !block.isIdentity) {
                activatedShape = Self.run(block.preActivation, input: ws.current, shape: shape, output: ws.activated,
                                          scratch: (ws.hidden, ws.inner))
                activated = UnsafePointer(ws.activated)
            }
            let outShape: ActivationShape
            if block.isIdentity {
                ws.next.update(from: ws.current, count: shape.count)
                outShape = shape
            } else {
                let (source, sourceShape) = block.shortcutReadsPreActivated ? (activated, activatedShape) : (UnsafePointer(ws.current), shape)
                outShape = Self.run(block.shortcut, input: source, shape: sourceShape, output: ws.next, scratch: (ws.residual, ws.inner))
            }
            if g != 0 {
                _ = Self.run(block.branch, input: activated, shape: activatedShape, output: ws.residual, scratch: (ws.hidden, ws.inner))
                Kernels.addScaled(ws.residual, scale: g, into: ws.next, count: outShape.count)
            }
            if block.reluAfterAdd { Kernels.relu(ws.next, count: outShape.count) }
            swap(&ws.current, &ws.next)
            shape = outShape
            if locate && !allFinite(ws.current, count: shape.count) { return .block(l + 1) }
        }
        let head = net.head
        let channels = shape.channels
        var features = [Float](repeating: 0, count: channels)
        if !head.pooling.isEmpty {
            // Another family's head: its own layers down to C x 1 x 1 features.
            _ = Self.run(head.pooling, input: ws.current, shape: shape, output: ws.next, scratch: (ws.hidden, ws.inner))
            for c in 0..<channels { features[c] = ws.next[c] }
        } else {
            if let norm = head.finalNorm {
                Kernels.affine(norm, input: ws.current, planeSize: shape.height * shape.width, output: ws.current, relu: true)
            }
            // Global average pooling, then the linear head.
            let plane = shape.height * shape.width
            for c in 0..<channels {
                var sum: Float = 0
                let src = ws.current + c * plane
                for i in 0..<plane { sum += src[i] }
                features[c] = sum / Float(plane)
            }
        }
        if let norm = head.pooledNorm {
            features.withUnsafeMutableBufferPointer {
                Kernels.layerNorm(norm, input: $0.baseAddress!, channels: channels, positions: 1, output: $0.baseAddress!)
            }
        }
        head.weight.withUnsafeBufferPointer { weight in
            for k in 0..<head.classes {
                var sum = head.bias[k]
                for c in 0..<channels { sum += weight[k * channels + c] * features[c] }
                logits[k] = sum
            }
        }
        if locate && !allFinite(logits, count: head.classes) { return .head }
        return nil
    }

    /// Runs `layers` on one image of `shape` from `input` into `output`, the layers in
    /// between alternating between the two scratch buffers; returns the output shape.
    static func run(_ layers: [Layer], input: UnsafePointer<Float>, shape: ActivationShape, output: UnsafeMutablePointer<Float>,
                    scratch: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) -> ActivationShape {
        var source = input, shape = shape
        for (i, layer) in layers.enumerated() {
            let target = i == layers.count - 1 ? output : (i % 2 == 0 ? scratch.0 : scratch.1)
            Kernels.run(layer, input: source, shape: shape, output: target)
            shape = layer.outputShape(shape)
            source = UnsafePointer(target)
        }
        if layers.isEmpty { output.update(from: input, count: shape.count) }
        return shape
    }
}

/// The contiguous range of examples worker `worker` of `workers` evaluates.
func slice(_ worker: Int, of workers: Int, count: Int) -> Range<Int> {
    let base = count / workers, extra = count % workers
    let start = worker * base + min(worker, extra)
    return start..<(start + base + (worker < extra ? 1 : 0))
}

/// Input and output buffers shared by the workers; each writes a disjoint slice.
private struct SharedBuffers: @unchecked Sendable {
    let pixels: UnsafeBufferPointer<Float>
    let logits: UnsafeMutableBufferPointer<Float>
}

/// One worker's scratch activations, each large enough for any layer of the network.
struct Workspace: ~Copyable {
    var current: UnsafeMutablePointer<Float>
    var next: UnsafeMutablePointer<Float>
    let activated: UnsafeMutablePointer<Float>
    let hidden: UnsafeMutablePointer<Float>
    /// A bottleneck's second hidden activation (after its 3x3 convolution).
    let inner: UnsafeMutablePointer<Float>
    let residual: UnsafeMutablePointer<Float>

    init(capacity: Int) {
        func buffer() -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(capacity, 1))
            p.initialize(repeating: 0, count: max(capacity, 1))
            return p
        }
        (current, next, activated, hidden, inner, residual) = (buffer(), buffer(), buffer(), buffer(), buffer(), buffer())
    }

    deinit {
        for p in [current, next, activated, hidden, inner, residual] { p.deallocate() }
    }
}
