import Dispatch

/// The reference engine: the plain kernels of ``Kernels`` on one image at a time in CHW
/// layout, the batch split into contiguous slices across threads. It is the baseline
/// the fused engine is tested against.
struct ReferenceEngine: EvaluationEngine {
    let network: Network
    let threads: Int

    func logits(_ batch: ImageBatch, gates: Gates) -> [Float] {
        let classes = network.architecture.numClasses
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

    /// One image through stem, blocks and head.
    private func forward(image: UnsafePointer<Float>, height: Int, width: Int, example: Int, gates: Gates,
                         workspace ws: inout Workspace, logits: UnsafeMutablePointer<Float>) {
        let net = network
        var (h, w) = (height, width)
        var channels = net.stem.outChannels
        // Stem convolutions alternate between two scratch buffers; the last writes the
        // block input, or a buffer that max pooling reads.
        var source = image
        for (i, conv) in net.stemLayers.enumerated() {
            let last = i == net.stemLayers.count - 1
            let target = last && !net.stemMaxPool ? ws.current : (i % 2 == 0 ? ws.next : ws.hidden)
            Kernels.convolve(conv, input: source, height: h, width: w, output: target, relu: net.stemReLU)
            (h, w) = (conv.outputSize(h), conv.outputSize(w))
            source = UnsafePointer(target)
        }
        if net.stemMaxPool {
            Kernels.maxPool(source, channels: channels, height: h, width: w, output: ws.current)
            (h, w) = (StemPool.outputSize(h), StemPool.outputSize(w))
        }
        for (l, block) in net.blocks.enumerated() {
            let g = gates.gate(block: l, example: example)
            let oh = block.outputSize(h), ow = block.outputSize(w)
            let outCount = block.spec.outChannels * oh * ow
            // A dropped identity block changes nothing: its input is already post-activated.
            if g == 0, case .identity = block.shortcut { continue }
            // The input to conv1 (and to a projection shortcut): x, or relu(bn1(x)) when pre-activated.
            var activated = UnsafePointer(ws.current)
            if let norm = block.preNorm, g != 0 || isProjection(block.shortcut) {
                Kernels.affine(norm, input: ws.current, planeSize: h * w, output: ws.activated, relu: true)
                activated = UnsafePointer(ws.activated)
            }
            switch block.shortcut {
            case .identity:
                ws.next.update(from: ws.current, count: outCount)
            case .zeroPadded(let stride, let averagePool, let before, let after):
                Kernels.zeroPaddedShortcut(input: ws.current, channels: channels, height: h, width: w, stride: stride,
                                           averagePool: averagePool, padBefore: before, padAfter: after, output: ws.next)
            case .projection(let conv):
                Kernels.convolve(conv, input: activated, height: h, width: w, output: ws.next, relu: false)
            case .pooledProjection(let conv):
                Kernels.averagePool2x2(activated, channels: channels, height: h, width: w, output: ws.residual)
                Kernels.convolve(conv, input: ws.residual, height: oh, width: ow, output: ws.next, relu: false)
            }
            if g != 0 {
                Kernels.convolve(block.conv1, input: activated, height: h, width: w, output: ws.hidden, relu: true)
                let h1 = block.conv1.outputSize(h), w1 = block.conv1.outputSize(w)
                if let conv3 = block.conv3 {
                    Kernels.convolve(block.conv2, input: ws.hidden, height: h1, width: w1, output: ws.inner, relu: true)
                    Kernels.convolve(conv3, input: ws.inner, height: oh, width: ow, output: ws.residual, relu: false)
                } else {
                    Kernels.convolve(block.conv2, input: ws.hidden, height: h1, width: w1, output: ws.residual, relu: false)
                }
                Kernels.addScaled(ws.residual, scale: g, into: ws.next, count: outCount)
            }
            if block.reluAfterAdd { Kernels.relu(ws.next, count: outCount) }
            swap(&ws.current, &ws.next)
            (h, w, channels) = (oh, ow, block.spec.outChannels)
        }
        if let norm = net.finalNorm {
            Kernels.affine(norm, input: ws.current, planeSize: h * w, output: ws.current, relu: true)
        }
        // Global average pooling, then the linear head.
        let plane = h * w
        var features = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            var sum: Float = 0
            let src = ws.current + c * plane
            for i in 0..<plane { sum += src[i] }
            features[c] = sum / Float(plane)
        }
        let classes = net.architecture.numClasses
        net.headWeight.withUnsafeBufferPointer { weight in
            for k in 0..<classes {
                var sum = net.headBias[k]
                for c in 0..<channels { sum += weight[k * channels + c] * features[c] }
                logits[k] = sum
            }
        }
    }

    private func isProjection(_ shortcut: ShortcutPath) -> Bool {
        if case .projection = shortcut { return true }
        return false
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
