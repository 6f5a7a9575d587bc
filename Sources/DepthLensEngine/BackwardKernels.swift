import DepthLensModel

/// The input gradients of the reference engine's layers on one image in CHW layout: given
/// a layer's input, its output and the gradient at its output, the gradient at its input
/// (dL/dx = J^T dL/dy). Only the input gradient: no weight gradients, the backward pass
/// measures how much of the loss reaches the image (Veit et al. 2016, section 5).
enum BackwardKernels {
    /// Why `layer` has no backward kernel here, or nil when it has one: the ResNets'
    /// layers do; layer norm, GELU and a transformer's own layers do not yet.
    static func unsupported(_ layer: Layer) -> String? {
        switch layer {
        case .convolution, .affine, .relu, .maxPool, .averagePool2x2, .zeroChannels: nil
        case .layerNorm: "layer norm"
        case .gelu: "GELU"
        case .transformer: "self-attention and token layers"
        }
    }

    /// dL/d(input) of `layer` from dL/d(output) `gradient`; `input` and `output` are the
    /// layer's forward values, `shape` its input shape.
    static func inputGradient(_ layer: Layer, input: [Float], output: [Float], shape: ActivationShape,
                              gradient: [Float]) -> [Float] {
        let (c, h, w) = (shape.channels, shape.height, shape.width)
        var dx = [Float](repeating: 0, count: shape.count)
        switch layer {
        case .convolution(let conv, let relu):
            let dy = relu ? masked(gradient, by: output) : gradient
            dx.withUnsafeMutableBufferPointer { d in
                dy.withUnsafeBufferPointer { g in convolutionInputGradient(conv, gradient: g.baseAddress!, height: h, width: w, output: d.baseAddress!) }
            }
        case .affine(let norm, let relu):
            let dy = relu ? masked(gradient, by: output) : gradient
            let plane = h * w
            for ch in 0..<c {
                let a = norm.scale[ch]
                for i in (ch * plane)..<((ch + 1) * plane) { dx[i] = dy[i] * a }
            }
        case .relu:
            dx = masked(gradient, by: output)
        case .maxPool:
            maxPoolInputGradient(input: input, channels: c, height: h, width: w, gradient: gradient, output: &dx)
        case .averagePool2x2:
            let oh = ShortcutPool.outputSize(h), ow = ShortcutPool.outputSize(w)
            for ch in 0..<c {
                for oy in 0..<oh {
                    let y1 = min(2 * oy + 2, h)
                    for ox in 0..<ow {
                        let x1 = min(2 * ox + 2, w)
                        let share = gradient[(ch * oh + oy) * ow + ox] / Float((y1 - 2 * oy) * (x1 - 2 * ox))
                        for y in (2 * oy)..<y1 { for x in (2 * ox)..<x1 { dx[(ch * h + y) * w + x] += share } }
                    }
                }
            }
        case .zeroChannels(let z):
            // The appended zero channels are constants: only the body's gradient flows back.
            let s = z.stride
            let oh = z.averagePool ? h / s : (h - 1) / s + 1
            let ow = z.averagePool ? w / s : (w - 1) / s + 1
            let inverseArea = 1 / Float(s * s)
            for ch in 0..<c {
                let body = (z.before + ch) * oh * ow
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let g = gradient[body + oy * ow + ox]
                        if z.averagePool {
                            for dy in 0..<s { for dxi in 0..<s { dx[(ch * h + oy * s + dy) * w + ox * s + dxi] += g * inverseArea } }
                        } else {
                            dx[(ch * h + oy * s) * w + ox * s] += g
                        }
                    }
                }
            }
        case .layerNorm, .gelu, .transformer:
            preconditionFailure("no backward kernel for \(unsupported(layer) ?? "this layer"): checked before the pass")
        }
        return dx
    }

    /// The gradient through a ReLU whose output is `output`: zero where it clipped (as
    /// PyTorch, whose ReLU passes the gradient where its output is positive).
    static func masked(_ gradient: [Float], by output: [Float]) -> [Float] {
        zip(gradient, output).map { $1 > 0 ? $0 : 0 }
    }

    /// The transposed convolution of `gradient` (outChannels x oh x ow) into `output`
    /// (inChannels x h x w, zeroed here): the forward loop of ``Kernels/convolve`` with
    /// the roles of input and output exchanged.
    static func convolutionInputGradient(_ conv: Convolution, gradient: UnsafePointer<Float>, height h: Int, width w: Int,
                                         output: UnsafeMutablePointer<Float>) {
        let oh = conv.outputSize(h), ow = conv.outputSize(w)
        let k = conv.kernel, s = conv.stride, pad = conv.padding
        let plane = oh * ow
        let perGroup = conv.inChannelsPerGroup, outPerGroup = conv.outChannels / conv.groups
        output.update(repeating: 0, count: conv.inChannels * h * w)
        conv.weight.withUnsafeBufferPointer { weight in
            for oc in 0..<conv.outChannels {
                let dy = gradient + oc * plane
                let firstInput = (oc / outPerGroup) * perGroup
                for j in 0..<perGroup {
                    let inPlane = output + (firstInput + j) * h * w
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let wv = weight[((oc * perGroup + j) * k + ky) * k + kx]
                            let xoff = kx - pad
                            let oxLo = xoff >= 0 ? 0 : (-xoff + s - 1) / s
                            let oxHi = w - 1 - xoff < 0 ? 0 : min(ow, (w - 1 - xoff) / s + 1)
                            if oxLo >= oxHi { continue }
                            for oy in 0..<oh {
                                let iy = oy * s + ky - pad
                                if iy < 0 || iy >= h { continue }
                                let dst = inPlane + iy * w + xoff
                                let src = dy + oy * ow
                                if s == 1 {
                                    for ox in oxLo..<oxHi { dst[ox] += wv * src[ox] }
                                } else {
                                    for ox in oxLo..<oxHi { dst[ox * s] += wv * src[ox] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// ``StemPool``'s gradient: each window's gradient goes to its maximum, the first one in
    /// row order on a tie (as PyTorch's CPU kernel).
    static func maxPoolInputGradient(input: [Float], channels: Int, height h: Int, width w: Int, gradient: [Float],
                                     output dx: inout [Float]) {
        let oh = StemPool.outputSize(h), ow = StemPool.outputSize(w)
        let k = StemPool.kernel, s = StemPool.stride, pad = StemPool.padding
        for c in 0..<channels {
            let base = c * h * w
            for oy in 0..<oh {
                let y0 = max(oy * s - pad, 0), y1 = min(oy * s - pad + k, h)
                for ox in 0..<ow {
                    let x0 = max(ox * s - pad, 0), x1 = min(ox * s - pad + k, w)
                    var best = -Float.infinity, at = base + y0 * w + x0
                    for y in y0..<y1 { for x in x0..<x1 where input[base + y * w + x] > best { best = input[base + y * w + x]; at = base + y * w + x } }
                    dx[at] += gradient[(c * oh + oy) * ow + ox]
                }
            }
        }
    }
}
