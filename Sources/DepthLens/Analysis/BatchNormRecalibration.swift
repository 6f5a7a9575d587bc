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
    public static func networks(_ context: AnalysisContext, _ configurations: [[Float]],
                                _ source: (any ImageSource)?) throws -> [Network]? {
        guard let source else { return nil }
        return try configurations.map { gates in
            Network(checkpoint: try recalibrate(context.checkpoint, gates: gates, source: source, batchSize: context.batchSize))
        }
    }

    /// A copy of `checkpoint` whose running statistics are re-estimated under `gates`.
    public static func recalibrate(_ checkpoint: Checkpoint, gates: [Float], source: any ImageSource,
                                   batchSize: Int) throws -> Checkpoint {
        let arch = checkpoint.architecture
        guard gates.count == arch.blockCount else {
            throw EvaluationError.gates("the gate vector has \(gates.count) entries but the network has \(arch.blockCount) blocks")
        }
        guard source.count > 0, source.channels == arch.inChannels else {
            throw DataSetError(source: source.name, message: "recalibration needs images with \(arch.inChannels) channel(s)")
        }
        var pass = Pass(checkpoint: checkpoint)
        for start in stride(from: 0, to: source.count, by: batchSize) {
            let range = start..<min(source.count, start + batchSize)
            guard range.count > 1 else { break }  // one image has no variance (PyTorch refuses it too)
            pass.forward(try source.batch(range), gates: gates)
        }
        var result = checkpoint
        for (name, sums) in pass.statistics where sums.batches > 0 {
            result.tensors["\(name).running_mean"]!.scalars = sums.mean.map { Float($0 / Double(sums.batches)) }
            result.tensors["\(name).running_var"]!.scalars = sums.variance.map { Float($0 / Double(sums.batches)) }
        }
        return result
    }

    /// One train-mode pass: batch tensors are (N, C, H, W), row-major.
    struct Pass {
        let checkpoint: Checkpoint
        var statistics: [String: (mean: [Double], variance: [Double], batches: Int)] = [:]

        init(checkpoint: Checkpoint) { self.checkpoint = checkpoint }

        func tensor(_ key: String) -> [Float] { checkpoint.tensors[key]!.scalars }

        func conv(_ name: String, _ x: [Float], n: Int, c: Int, h: Int, w: Int, out: Int, kernel: Int, stride: Int) -> ([Float], Int, Int) {
            let layer = Convolution(outChannels: out, inChannels: c, kernel: kernel, stride: stride, padding: kernel / 2,
                                    weight: tensor("\(name).weight"),
                                    bias: checkpoint.architecture.convBias ? tensor("\(name).bias") : [Float](repeating: 0, count: out))
            let oh = layer.outputSize(h), ow = layer.outputSize(w)
            let y = Self.perImage(x, n: n, inputSize: c * h * w, outputSize: out * oh * ow) { src, dst in
                Kernels.convolve(layer, input: src, height: h, width: w, output: dst, relu: false)
            }
            return (y, oh, ow)
        }

        /// Runs `kernel` on each of the `n` images of `x` (`inputSize` values each), into a
        /// new batch of `outputSize` values an image.
        static func perImage(_ x: [Float], n: Int, inputSize: Int, outputSize: Int,
                             _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
            var y = [Float](repeating: 0, count: n * outputSize)
            x.withUnsafeBufferPointer { src in
                y.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<n { kernel(src.baseAddress! + i * inputSize, dst.baseAddress! + i * outputSize) }
                }
            }
            return y
        }

        /// The ImageNet stem's 3x3/2 max pooling on every image.
        func maxPool(_ x: [Float], n: Int, c: Int, h: Int, w: Int) -> ([Float], Int, Int) {
            let oh = StemPool.outputSize(h), ow = StemPool.outputSize(w)
            let y = Self.perImage(x, n: n, inputSize: c * h * w, outputSize: c * oh * ow) { src, dst in
                Kernels.maxPool(src, channels: c, height: h, width: w, output: dst)
            }
            return (y, oh, ow)
        }

        /// ``ShortcutPool`` (timm's `avg_down`) on every image.
        func averagePool(_ x: [Float], n: Int, c: Int, h: Int, w: Int) -> [Float] {
            let oh = ShortcutPool.outputSize(h), ow = ShortcutPool.outputSize(w)
            let y = Self.perImage(x, n: n, inputSize: c * h * w, outputSize: c * oh * ow) { src, dst in
                Kernels.averagePool2x2(src, channels: c, height: h, width: w, output: dst)
            }
            return y
        }

        /// Normalises with the batch's statistics and records them.
        mutating func norm(_ name: String, _ x: [Float], n: Int, c: Int, plane: Int, relu: Bool) -> [Float] {
            let weight = tensor("\(name).weight"), bias = tensor("\(name).bias")
            let eps = checkpoint.architecture.bnEps
            var y = x
            var record = statistics[name] ?? ([Double](repeating: 0, count: c), [Double](repeating: 0, count: c), 0)
            let count = Double(n * plane)
            for ch in 0..<c {
                var sum = 0.0, squares = 0.0
                for i in 0..<n { for j in 0..<plane { let v = Double(x[(i * c + ch) * plane + j]); sum += v; squares += v * v } }
                let mean = sum / count
                let variance = max(0, squares / count - mean * mean)
                record.mean[ch] += mean
                record.variance[ch] += count > 1 ? variance * count / (count - 1) : 0
                let scale = Double(weight[ch]) / (variance + eps).squareRoot()
                for i in 0..<n {
                    for j in 0..<plane {
                        let k = (i * c + ch) * plane + j
                        let v = Float((Double(x[k]) - mean) * scale + Double(bias[ch]))
                        y[k] = relu && v < 0 ? 0 : v
                    }
                }
            }
            record.batches += 1
            statistics[name] = record
            return y
        }

        mutating func forward(_ batch: ImageBatch, gates: [Float]) {
            let arch = checkpoint.architecture
            let n = batch.count
            var (x, h, w, c) = (batch.pixels, batch.height, batch.width, batch.channels)
            for layer in arch.stemConvolutions {
                (x, h, w) = conv(layer.name, x, n: n, c: c, h: h, w: w, out: layer.out, kernel: layer.kernel, stride: layer.stride)
                c = layer.out
                if arch.block != .preact { x = norm(layer.norm, x, n: n, c: c, plane: h * w, relu: true) }
            }
            if arch.stemMaxPool { (x, h, w) = maxPool(x, n: n, c: c, h: h, w: w) }
            for spec in arch.blocks {
                let p = spec.keyPrefix, g = gates[spec.index - 1]
                let out = spec.outChannels
                var activated = x
                if arch.block == .preact, g != 0 || spec.shortcut == .projection {
                    activated = norm(p + "bn1", x, n: n, c: c, plane: h * w, relu: true)
                }
                var s: [Float]
                var (oh, ow) = ((h - 1) / spec.stride + 1, (w - 1) / spec.stride + 1)
                switch spec.shortcut {
                case .identity:
                    s = x
                case .projection:
                    let keys = arch.projectionKeys
                    // avg_down: pool to the output size first, then a stride-1 convolution.
                    let pooled = arch.averagePoolDownsample && spec.stride == 2
                    let input = pooled ? averagePool(activated, n: n, c: c, h: h, w: w) : activated
                    let (y, ph, pw) = conv(p + keys.conv, input, n: n, c: c, h: pooled ? oh : h, w: pooled ? ow : w, out: out,
                                           kernel: 1, stride: pooled ? 1 : spec.stride)
                    s = norm(p + keys.norm, y, n: n, c: out, plane: ph * pw, relu: false)
                case .zeroPadded:
                    let average = arch.shortcut == .averagePoolThenPad
                    if average { (oh, ow) = (h / spec.stride, w / spec.stride) }
                    let extra = out - c
                    let before = arch.channelPadding == .both ? extra / 2 : 0
                    s = [Float](repeating: 0, count: n * out * oh * ow)
                    x.withUnsafeBufferPointer { src in
                        s.withUnsafeMutableBufferPointer { dst in
                            for i in 0..<n {
                                Kernels.zeroPaddedShortcut(input: src.baseAddress! + i * c * h * w, channels: c, height: h, width: w,
                                                           stride: spec.stride, averagePool: average, padBefore: before,
                                                           padAfter: extra - before, output: dst.baseAddress! + i * out * oh * ow)
                            }
                        }
                    }
                }
                if g != 0, arch.block == .bottleneck {
                    let mid = spec.midChannels
                    var (t, th, tw) = conv(p + "conv1", x, n: n, c: c, h: h, w: w, out: mid, kernel: 1, stride: 1)
                    t = norm(p + "bn1", t, n: n, c: mid, plane: th * tw, relu: true)
                    (t, th, tw) = conv(p + "conv2", t, n: n, c: mid, h: th, w: tw, out: mid, kernel: 3, stride: spec.stride)
                    t = norm(p + "bn2", t, n: n, c: mid, plane: th * tw, relu: true)
                    (t, th, tw) = conv(p + "conv3", t, n: n, c: mid, h: th, w: tw, out: out, kernel: 1, stride: 1)
                    t = norm(p + "bn3", t, n: n, c: out, plane: th * tw, relu: false)
                    for k in 0..<s.count { s[k] += g * t[k] }
                } else if g != 0 {
                    var (t, th, tw) = conv(p + "conv1", activated, n: n, c: c, h: h, w: w, out: out, kernel: 3, stride: spec.stride)
                    t = norm(p + (arch.block == .preact ? "bn2" : "bn1"), t, n: n, c: out, plane: th * tw, relu: true)
                    var (r, _, _) = conv(p + "conv2", t, n: n, c: out, h: th, w: tw, out: out, kernel: 3, stride: 1)
                    if arch.block == .basic { r = norm(p + "bn2", r, n: n, c: out, plane: th * tw, relu: false) }
                    for k in 0..<s.count { s[k] += g * r[k] }
                }
                if arch.block != .preact { for k in 0..<s.count where s[k] < 0 { s[k] = 0 } }
                (x, h, w, c) = (s, oh, ow, out)
            }
            if arch.block == .preact { _ = norm("bn_final", x, n: n, c: c, plane: h * w, relu: true) }
        }
    }
}
