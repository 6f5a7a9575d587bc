import DepthLensFormats
import DepthLensModel

/// The fused engine's own loops on blocked activations: rows of images, each row laid
/// out as `nChw{b}c` (channel blocks of b, then height, width, and b channels
/// innermost), channels padded with zeros up to a multiple of b. Everything here is
/// memory-bound and small next to the convolutions.
struct BlockedShape: Equatable {
    var channels: Int
    var height: Int
    var width: Int
    var block: Int

    var channelBlocks: Int { (channels + block - 1) / block }
    var plane: Int { height * width }
    /// Floats per image, padding included.
    var rowSize: Int { channelBlocks * block * plane }

    init(channels: Int, height: Int, width: Int, block: Int) {
        (self.channels, self.height, self.width, self.block) = (channels, height, width, block)
    }

    init(_ shape: ActivationShape, block: Int) {
        self.init(channels: shape.channels, height: shape.height, width: shape.width, block: block)
    }

    /// The unblocked shape.
    var activation: ActivationShape { ActivationShape(channels: channels, height: height, width: width) }

    /// Offset of (c, y, x) inside a row.
    @inline(__always)
    func offset(_ c: Int, _ y: Int, _ x: Int) -> Int { ((c / block) * plane + y * width + x) * block + c % block }
}

enum BlockedKernels {
    /// `rows` images from planar NCHW into `shape`'s blocked layout, padded channels zero.
    static func block(planar input: UnsafePointer<Float>, rows: Int, into output: UnsafeMutablePointer<Float>,
                      shape: BlockedShape) {
        let plane = shape.plane
        output.update(repeating: 0, count: rows * shape.rowSize)
        for r in 0..<rows {
            let dst = output + r * shape.rowSize
            for c in 0..<shape.channels {
                let src = input + (r * shape.channels + c) * plane
                let base = (c / shape.block) * plane * shape.block + c % shape.block
                for p in 0..<plane { dst[base + p * shape.block] = src[p] }
            }
        }
    }

    /// output = input * scale + shift per channel (batch norm), then max(0, .) when
    /// `relu`; padded channels stay zero.
    static func affine(_ norm: ChannelAffine, relu: Bool, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                       rows: Int, shape: BlockedShape) {
        let b = shape.block, padded = shape.channelBlocks * b
        var scale = [Float](repeating: 0, count: padded), shift = [Float](repeating: 0, count: padded)
        for c in 0..<shape.channels { (scale[c], shift[c]) = (norm.scale[c], norm.shift[c]) }
        let plane = shape.plane
        for r in 0..<rows {
            for cb in 0..<shape.channelBlocks {
                let base = (r * shape.channelBlocks + cb) * plane * b
                let src = input + base, dst = output + base
                if b == 16 {
                    affine(SIMD16<Float>.self, src, dst, plane: plane, scale: scale[(cb * b)...], shift: shift[(cb * b)...], relu: relu)
                } else if b == 8 {
                    affine(SIMD8<Float>.self, src, dst, plane: plane, scale: scale[(cb * b)...], shift: shift[(cb * b)...], relu: relu)
                } else {
                    for p in 0..<plane {
                        for j in 0..<b {
                            let v = src[p * b + j] * scale[cb * b + j] + shift[cb * b + j]
                            dst[p * b + j] = relu && v < 0 ? 0 : v
                        }
                    }
                }
            }
        }
    }

    /// Layer norm over the channels at each position of every row (`output` may be
    /// `input`), a vector of the block's channels at a time. Padded channels hold zeros
    /// on input (every layer keeps them so) and are written as zeros: their weight and
    /// bias are zero, and their (0 - mean)^2 terms are taken out of the variance.
    static func layerNorm(_ norm: LayerNormalization, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                          rows: Int, shape: BlockedShape) {
        let b = shape.block, padded = shape.channelBlocks * b
        var weight = [Float](repeating: 0, count: padded), bias = [Float](repeating: 0, count: padded)
        for c in 0..<shape.channels { (weight[c], bias[c]) = (norm.weight[c], norm.bias[c]) }
        if b == 16 {
            layerNorm(SIMD16<Float>.self, norm.eps, weight, bias, input, output, rows: rows, shape: shape)
        } else if b == 8 {
            layerNorm(SIMD8<Float>.self, norm.eps, weight, bias, input, output, rows: rows, shape: shape)
        } else {
            preconditionFailure("channel blocks are 8 or 16 wide")
        }
    }

    private static func layerNorm<V: SIMD>(_: V.Type, _ eps: Float, _ weight: [Float], _ bias: [Float],
                                           _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                                           rows: Int, shape: BlockedShape) where V.Scalar == Float {
        let n = V.scalarCount, plane = shape.plane, blocks = shape.channelBlocks
        let inverse = 1 / Float(shape.channels), padding = Float(blocks * n - shape.channels)
        let w = (0..<blocks).map { V(weight[($0 * n)..<(($0 + 1) * n)]) }
        let t = (0..<blocks).map { V(bias[($0 * n)..<(($0 + 1) * n)]) }
        for r in 0..<rows {
            let src = input + r * shape.rowSize, dst = output + r * shape.rowSize
            for p in 0..<plane {
                var sum = V(repeating: 0)
                for cb in 0..<blocks { sum += UnsafeRawPointer(src + (cb * plane + p) * n).loadUnaligned(as: V.self) }
                let mean = sum.sum() * inverse
                let m = V(repeating: mean)
                var squares = V(repeating: 0)
                for cb in 0..<blocks {
                    let d = UnsafeRawPointer(src + (cb * plane + p) * n).loadUnaligned(as: V.self) - m
                    squares += d * d
                }
                let variance = max(0, squares.sum() - padding * mean * mean) * inverse
                let rstd = V(repeating: 1 / (variance + eps).squareRoot())
                for cb in 0..<blocks {
                    let k = (cb * plane + p) * n
                    let x = UnsafeRawPointer(src + k).loadUnaligned(as: V.self)
                    UnsafeMutableRawPointer(dst + k).storeBytes(of: (x - m) * rstd * w[cb] + t[cb], as: V.self)
                }
            }
        }
    }

    /// output = GELU(input) over `count` values (`output` may be `input`); GELU(0) = 0, so
    /// padded channels stay zero.
    static func gelu(_ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { output[i] = Kernels.gelu(input[i]) }
    }

    /// output = max(0, input) over `count` values (`output` may be `input`).
    static func relu(_ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { output[i] = input[i] < 0 ? 0 : input[i] }
    }

    /// Option A shortcut: downsample by `stride` (average pooling or subsampling), then
    /// `padBefore` zero channels before the input's channels and the rest after.
    static func zeroPaddedShortcut(input: UnsafePointer<Float>, inShape: BlockedShape, output: UnsafeMutablePointer<Float>,
                                   outShape: BlockedShape, rows: Int, stride s: Int, averagePool: Bool, padBefore: Int) {
        let inverseArea = 1 / Float(s * s)
        for r in 0..<rows {
            let src = input + r * inShape.rowSize, dst = output + r * outShape.rowSize
            dst.update(repeating: 0, count: outShape.rowSize)
            for c in 0..<inShape.channels {
                let oc = c + padBefore
                for oy in 0..<outShape.height {
                    for ox in 0..<outShape.width {
                        let value: Float
                        if averagePool {
                            var sum: Float = 0
                            for dy in 0..<s { for dx in 0..<s { sum += src[inShape.offset(c, oy * s + dy, ox * s + dx)] } }
                            value = sum * inverseArea
                        } else {
                            value = src[inShape.offset(c, oy * s, ox * s)]
                        }
                        dst[outShape.offset(oc, oy, ox)] = value
                    }
                }
            }
        }
    }

    /// ``StemPool`` (3x3 max pooling, stride 2, padding 1) on every row; the padded
    /// channels stay zero (their inputs are zero).
    static func maxPool(_ input: UnsafePointer<Float>, inShape: BlockedShape, output: UnsafeMutablePointer<Float>,
                        outShape: BlockedShape, rows: Int) {
        let b = inShape.block, k = StemPool.kernel, s = StemPool.stride, pad = StemPool.padding
        for r in 0..<rows {
            for cb in 0..<inShape.channelBlocks {
                let src = input + r * inShape.rowSize + cb * inShape.plane * b
                let dst = output + r * outShape.rowSize + cb * outShape.plane * b
                for oy in 0..<outShape.height {
                    let y0 = max(oy * s - pad, 0), y1 = min(oy * s - pad + k, inShape.height)
                    for ox in 0..<outShape.width {
                        let x0 = max(ox * s - pad, 0), x1 = min(ox * s - pad + k, inShape.width)
                        let out = dst + (oy * outShape.width + ox) * b
                        windowMax(lanes: b, src, width: inShape.width, rows: y0..<y1, columns: x0..<x1, into: out)
                    }
                }
            }
        }
    }

    /// One channel block of `plane` pixels: v * scale + shift, then max(0, .) when `relu`,
    /// a vector of the block's channels at a time (16 with AVX-512, 8 otherwise).
    @inline(__always)
    private static func affine<V: SIMD>(_: V.Type, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, plane: Int,
                                        scale: ArraySlice<Float>, shift: ArraySlice<Float>, relu: Bool) where V.Scalar == Float {
        let n = V.scalarCount
        let s = V(scale.prefix(n)), t = V(shift.prefix(n))
        for p in 0..<plane {
            let y = UnsafeRawPointer(src + p * n).loadUnaligned(as: V.self) * s + t
            UnsafeMutableRawPointer(dst + p * n).storeBytes(of: relu ? y.replacing(with: 0, where: y .< 0) : y, as: V.self)
        }
    }

    /// The channel-wise maximum over a window of blocked pixels, one vector per pixel.
    @inline(__always)
    private static func windowMax(lanes n: Int, _ src: UnsafePointer<Float>, width: Int, rows: Range<Int>,
                                  columns: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for j in 0..<n { out[j] = -.infinity }
        for y in rows {
            for x in columns {
                // Plain loops over the block's lanes, which LLVM turns into vector compares
                // and blends (SIMD16's pointwiseMax compiled to a scalar loop with spills:
                // the stem's pooling took 16% of a 224 x 224 ResNet-50 pass). NaN propagates
                // as in PyTorch: a NaN lane takes any NaN and keeps it.
                let p = src + (y * width + x) * n
                for j in 0..<n {
                    let v = p[j], o = out[j]
                    out[j] = v > o || v != v ? v : o
                }
            }
        }
    }

    /// ``ShortcutPool`` (2x2 average pooling, stride 2, ceil mode, padding not counted) on
    /// every row; padded channels stay zero.
    static func averagePool2x2(_ input: UnsafePointer<Float>, inShape: BlockedShape, output: UnsafeMutablePointer<Float>,
                               outShape: BlockedShape, rows: Int) {
        let b = inShape.block
        for r in 0..<rows {
            for cb in 0..<inShape.channelBlocks {
                let src = input + r * inShape.rowSize + cb * inShape.plane * b
                let dst = output + r * outShape.rowSize + cb * outShape.plane * b
                for oy in 0..<outShape.height {
                    let y1 = min(2 * oy + 2, inShape.height)
                    for ox in 0..<outShape.width {
                        let x1 = min(2 * ox + 2, inShape.width)
                        let inverse = 1 / Float((y1 - 2 * oy) * (x1 - 2 * ox))
                        let out = dst + (oy * outShape.width + ox) * b
                        for j in 0..<b { out[j] = 0 }
                        for y in (2 * oy)..<y1 {
                            for x in (2 * ox)..<x1 {
                                let v = src + (y * inShape.width + x) * b
                                for j in 0..<b { out[j] += v[j] }
                            }
                        }
                        for j in 0..<b { out[j] *= inverse }
                    }
                }
            }
        }
    }

    /// Copies rows `indices` of `source` into consecutive rows of `destination`.
    static func gather(_ source: UnsafePointer<Float>, rows indices: [Int], rowSize: Int,
                       into destination: UnsafeMutablePointer<Float>) {
        for (i, r) in indices.enumerated() {
            (destination + i * rowSize).update(from: source + r * rowSize, count: rowSize)
        }
    }

    /// Copies consecutive rows of `source` back to rows `indices` of `destination`.
    static func scatter(_ source: UnsafePointer<Float>, rows indices: [Int], rowSize: Int,
                        into destination: UnsafeMutablePointer<Float>) {
        for (i, r) in indices.enumerated() {
            (destination + r * rowSize).update(from: source + i * rowSize, count: rowSize)
        }
    }

    /// The head on each row: optional final batch norm and ReLU, global average pooling,
    /// then the linear layer; `logits` receives rows x classes values.
    static func head(_ head: ClassifierHead, input: UnsafePointer<Float>, shape: BlockedShape, rows: Int,
                     logits: UnsafeMutablePointer<Float>) {
        let channels = shape.channels, plane = shape.plane, b = shape.block
        let classes = head.classes
        let inversePlane = 1 / Float(plane)
        var features = [Float](repeating: 0, count: shape.channelBlocks * b)
        head.weight.withUnsafeBufferPointer { weight in
            for r in 0..<rows {
                let row = input + r * shape.rowSize
                for cb in 0..<shape.channelBlocks {
                    for j in 0..<b {
                        let c = cb * b + j
                        guard c < channels else { features[c] = 0; continue }
                        var sum: Float = 0
                        let src = row + cb * plane * b + j
                        if let norm = head.finalNorm {
                            let a = norm.scale[c], t = norm.shift[c]
                            for p in 0..<plane { sum += max(src[p * b] * a + t, 0) }
                        } else {
                            for p in 0..<plane { sum += src[p * b] }
                        }
                        features[c] = sum * inversePlane
                    }
                }
                if let norm = head.pooledNorm {
                    features.withUnsafeMutableBufferPointer {
                        Kernels.layerNorm(norm, input: $0.baseAddress!, channels: channels, positions: 1, output: $0.baseAddress!)
                    }
                }
                for k in 0..<classes {
                    var sum = head.bias[k]
                    for c in 0..<channels { sum += weight[k * channels + c] * features[c] }
                    logits[r * classes + k] = sum
                }
            }
        }
    }
}
