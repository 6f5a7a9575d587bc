import DepthLensFormats
import DepthLensModel
import Foundation

/// Plain reference kernels on one image in CHW layout. They are the correctness
/// baseline that faster kernels are tested against: simple loops, bounds settled
/// once per row, inner loops contiguous so the compiler vectorises them.
enum Kernels {
    /// One evaluation layer on one image of `shape`, from `input` into `output`.
    static func run(_ layer: Layer, input: UnsafePointer<Float>, shape: ActivationShape, output: UnsafeMutablePointer<Float>) {
        let (c, h, w) = (shape.channels, shape.height, shape.width)
        switch layer {
        case .convolution(let conv, let relu):
            convolve(conv, input: input, height: h, width: w, output: output, relu: relu)
        case .affine(let norm, let relu):
            affine(norm, input: input, planeSize: h * w, output: output, relu: relu)
        case .relu:
            for i in 0..<shape.count { output[i] = input[i] < 0 ? 0 : input[i] }
        case .maxPool:
            maxPool(input, channels: c, height: h, width: w, output: output)
        case .averagePool2x2:
            averagePool2x2(input, channels: c, height: h, width: w, output: output)
        case .zeroChannels(let z):
            zeroPaddedShortcut(input: input, channels: c, height: h, width: w, stride: z.stride, averagePool: z.averagePool,
                               padBefore: z.before, padAfter: z.after, output: output)
        case .transformer(let t):
            run(t, input: input, shape: shape, output: output)
        case .layerNorm(let norm):
            layerNorm(norm, input: input, channels: c, positions: h * w, output: output)
        case .gelu:
            for i in 0..<shape.count { output[i] = gelu(input[i]) }
        }
    }

    /// GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)) (`torch.nn.GELU()`, timm's default).
    @inline(__always)
    static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erf(x * 0.70710678118654752)) }

    /// Layer norm over the `channels` of each of `positions` pixels of a CHW image
    /// (`output` may be `input`): mean, then the biased variance of the deviations (two
    /// passes, as exact as float32 allows), eps inside the square root.
    static func layerNorm(_ norm: LayerNormalization, input: UnsafePointer<Float>, channels: Int, positions: Int,
                          output: UnsafeMutablePointer<Float>) {
        var mean = [Float](repeating: 0, count: positions), variance = [Float](repeating: 0, count: positions)
        let inverse = 1 / Float(channels)
        for c in 0..<channels {
            let src = input + c * positions
            for p in 0..<positions { mean[p] += src[p] }
        }
        for p in 0..<positions { mean[p] *= inverse }
        for c in 0..<channels {
            let src = input + c * positions
            for p in 0..<positions { let d = src[p] - mean[p]; variance[p] += d * d }
        }
        for p in 0..<positions { variance[p] = 1 / (variance[p] * inverse + norm.eps).squareRoot() }
        for c in 0..<channels {
            let src = input + c * positions, dst = output + c * positions
            let w = norm.weight[c], b = norm.bias[c]
            for p in 0..<positions { dst[p] = (src[p] - mean[p]) * variance[p] * w + b }
        }
    }

    /// output = conv(input) + bias, optionally followed by ReLU; with groups, each output
    /// channel reads its group's input channels.
    static func convolve(_ conv: Convolution, input: UnsafePointer<Float>, height h: Int, width w: Int,
                         output: UnsafeMutablePointer<Float>, relu: Bool) {
        let oh = conv.outputSize(h), ow = conv.outputSize(w)
        let k = conv.kernel, s = conv.stride, pad = conv.padding
        let plane = oh * ow
        let perGroup = conv.inChannelsPerGroup, outPerGroup = conv.outChannels / conv.groups
        conv.weight.withUnsafeBufferPointer { weight in
            for oc in 0..<conv.outChannels {
                let out = output + oc * plane
                out.update(repeating: conv.bias[oc], count: plane)
                let firstInput = (oc / outPerGroup) * perGroup
                for j in 0..<perGroup {
                    let inPlane = input + (firstInput + j) * h * w
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let wv = weight[((oc * perGroup + j) * k + ky) * k + kx]
                            let xoff = kx - pad
                            // Output columns whose input column ox*s + xoff lies inside the image.
                            let oxLo = xoff >= 0 ? 0 : (-xoff + s - 1) / s
                            let oxHi = w - 1 - xoff < 0 ? 0 : min(ow, (w - 1 - xoff) / s + 1)
                            if oxLo >= oxHi { continue }
                            for oy in 0..<oh {
                                let iy = oy * s + ky - pad
                                if iy < 0 || iy >= h { continue }
                                let src = inPlane + iy * w + xoff
                                let dst = out + oy * ow
                                if s == 1 {
                                    for ox in oxLo..<oxHi { dst[ox] += wv * src[ox] }
                                } else {
                                    for ox in oxLo..<oxHi { dst[ox] += wv * src[ox * s] }
                                }
                            }
                        }
                    }
                }
                if relu { for i in 0..<plane where out[i] < 0 { out[i] = 0 } }
            }
        }
    }

    /// output = affine(input) per channel, optionally followed by ReLU.
    static func affine(_ norm: ChannelAffine, input: UnsafePointer<Float>, planeSize: Int,
                       output: UnsafeMutablePointer<Float>, relu: Bool) {
        for c in 0..<norm.scale.count {
            let a = norm.scale[c], b = norm.shift[c]
            let src = input + c * planeSize, dst = output + c * planeSize
            for i in 0..<planeSize {
                let v = src[i] * a + b
                dst[i] = relu && v < 0 ? 0 : v
            }
        }
    }

    /// Option A shortcut: downsample by `stride` (2-D average pooling with kernel = stride,
    /// or taking every stride-th pixel), then add zero channels before and after.
    static func zeroPaddedShortcut(input: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int,
                                   stride s: Int, averagePool: Bool, padBefore: Int, padAfter: Int,
                                   output: UnsafeMutablePointer<Float>) {
        let oh = averagePool ? h / s : (h - 1) / s + 1
        let ow = averagePool ? w / s : (w - 1) / s + 1
        let plane = oh * ow
        output.update(repeating: 0, count: padBefore * plane)
        let body = output + padBefore * plane
        let inverseArea = 1 / Float(s * s)
        for c in 0..<channels {
            let src = input + c * h * w, dst = body + c * plane
            for oy in 0..<oh {
                for ox in 0..<ow {
                    if averagePool {
                        var sum: Float = 0
                        for dy in 0..<s { for dx in 0..<s { sum += src[(oy * s + dy) * w + ox * s + dx] } }
                        dst[oy * ow + ox] = sum * inverseArea
                    } else {
                        dst[oy * ow + ox] = src[oy * s * w + ox * s]
                    }
                }
            }
        }
        (body + channels * plane).update(repeating: 0, count: padAfter * plane)
    }

    /// y += g * x over `count` elements.
    static func addScaled(_ x: UnsafePointer<Float>, scale g: Float, into y: UnsafeMutablePointer<Float>, count: Int) {
        if g == 1 {
            for i in 0..<count { y[i] += x[i] }
        } else {
            for i in 0..<count { y[i] += g * x[i] }
        }
    }

    static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count where x[i] < 0 { x[i] = 0 }
    }

    /// ``StemPool``: 3x3 max pooling with stride 2 and padding 1 per channel (padded
    /// positions never win, as in PyTorch).
    static func maxPool(_ input: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int,
                        output: UnsafeMutablePointer<Float>) {
        let oh = StemPool.outputSize(h), ow = StemPool.outputSize(w)
        let k = StemPool.kernel, s = StemPool.stride, pad = StemPool.padding
        for c in 0..<channels {
            let src = input + c * h * w, dst = output + c * oh * ow
            for oy in 0..<oh {
                let y0 = max(oy * s - pad, 0), y1 = min(oy * s - pad + k, h)
                for ox in 0..<ow {
                    let x0 = max(ox * s - pad, 0), x1 = min(ox * s - pad + k, w)
                    var best = -Float.infinity
                    for y in y0..<y1 { for x in x0..<x1 { best = max(best, src[y * w + x]) } }
                    dst[oy * ow + ox] = best
                }
            }
        }
    }

    /// ``ShortcutPool``: 2x2 average pooling with stride 2, windows cut by the edge
    /// averaging the pixels they have.
    static func averagePool2x2(_ input: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int,
                               output: UnsafeMutablePointer<Float>) {
        let oh = ShortcutPool.outputSize(h), ow = ShortcutPool.outputSize(w)
        for c in 0..<channels {
            let src = input + c * h * w, dst = output + c * oh * ow
            for oy in 0..<oh {
                let y1 = min(2 * oy + 2, h)
                for ox in 0..<ow {
                    let x1 = min(2 * ox + 2, w)
                    var sum: Float = 0
                    for y in (2 * oy)..<y1 { for x in (2 * ox)..<x1 { sum += src[y * w + x] } }
                    dst[oy * ow + ox] = sum / Float((y1 - 2 * oy) * (x1 - 2 * ox))
                }
            }
        }
    }
}
