import DepthLensFormats
import DepthLensModel
import Foundation

/// The evaluation form of a ``TransformerOperation``: its weights read from the checkpoint.
/// Activations are C x 1 x T (channel c of token t at `c * T + t`).
enum TransformerLayer: Sendable {
    /// The patch grid read as tokens: the memory is unchanged.
    case tokens
    /// Prepend this C-vector as token 0.
    case classToken([Float])
    /// Add `values[t * C + c]` to channel c of token t.
    case positionEmbedding([Float])
    /// Multi-head attention between the q, k and v of every token, from the 3C x 1 x T
    /// output of the `qkv` layer (q, k, v each C wide, head h owning channels h d ..< (h + 1) d
    /// of each) to C x 1 x T, the heads concatenated. Self-attention lowers to a 1x1
    /// convolution `qkv`, this, and a 1x1 convolution `proj`.
    case attention(heads: Int, scale: Float)
    case classTokenPool
    case tokenMeanPool(prefixTokens: Int)

    func outputShape(_ shape: ActivationShape) -> ActivationShape {
        let (c, h, w) = (shape.channels, shape.height, shape.width)
        switch self {
        case .tokens: return ActivationShape(channels: c, height: 1, width: h * w)
        case .classToken: return ActivationShape(channels: c, height: 1, width: w + 1)
        case .positionEmbedding: return shape
        case .attention: return ActivationShape(channels: c / 3, height: 1, width: h * w)
        case .classTokenPool, .tokenMeanPool: return ActivationShape(channels: c, height: 1, width: 1)
        }
    }
}

extension Lowering {
    /// The layers of a transformer operation: self-attention is a 1x1 convolution `qkv`,
    /// the attention between tokens, and a 1x1 convolution `proj` (the engines' usual
    /// convolution, so that a branch ends in one and the gate fuses into it).
    func transformer(_ op: TransformerOperation) -> [Layer] {
        switch op {
        case .tokens: return [.transformer(.tokens)]
        case .classToken(let key, _): return [.transformer(.classToken(tensor(key)))]
        case .positionEmbedding(let key, _, _): return [.transformer(.positionEmbedding(tensor(key)))]
        case .selfAttention(let a):
            let c = a.channels
            let qkv = Convolution(outChannels: 3 * c, inChannels: c, kernel: 1, stride: 1, padding: 0,
                                  weight: tensor(a.key + ".qkv.weight"),
                                  bias: a.qkvBias ? tensor(a.key + ".qkv.bias") : [Float](repeating: 0, count: 3 * c))
            let proj = Convolution(outChannels: c, inChannels: c, kernel: 1, stride: 1, padding: 0,
                                   weight: tensor(a.key + ".proj.weight"), bias: tensor(a.key + ".proj.bias"))
            return [.convolution(qkv, relu: false), .transformer(.attention(heads: a.heads, scale: Float(a.scale))),
                    .convolution(proj, relu: false)]
        case .classTokenPool: return [.transformer(.classTokenPool)]
        case .tokenMeanPool(let prefix): return [.transformer(.tokenMeanPool(prefixTokens: prefix))]
        }
    }
}

extension Kernels {
    /// One transformer layer on one image's C x 1 x T activation.
    static func run(_ layer: TransformerLayer, input: UnsafePointer<Float>, shape: ActivationShape,
                    output: UnsafeMutablePointer<Float>) {
        let c = shape.channels, t = shape.height * shape.width
        switch layer {
        case .tokens:
            output.update(from: input, count: shape.count)
        case .classToken(let token):
            for ch in 0..<c {
                output[ch * (t + 1)] = token[ch]
                (output + ch * (t + 1) + 1).update(from: input + ch * t, count: t)
            }
        case .positionEmbedding(let position):
            for ch in 0..<c {
                for i in 0..<t { output[ch * t + i] = input[ch * t + i] + position[i * c + ch] }
            }
        case .attention(let heads, let scale):
            attend(input, channels: c / 3, heads: heads, scale: scale, tokens: t, output: output)
        case .classTokenPool:
            for ch in 0..<c { output[ch] = input[ch * t] }
        case .tokenMeanPool(let prefix):
            let n = Float(t - prefix)
            for ch in 0..<c {
                var sum: Float = 0
                for i in prefix..<t { sum += input[ch * t + i] }
                output[ch] = sum / n
            }
        }
    }

    /// Multi-head attention on one image's q, k, v (3C x T): per head softmax(q kᵀ scale) v,
    /// the heads concatenated into C x T. Written as sums of scaled rows (no float
    /// reductions in the inner loops, which then vectorise): a query's scores accumulate
    /// q_e times the keys' row e; its output accumulates p_j times value j (v laid out
    /// token by token first). The softmax subtracts the row's largest score first.
    static func attend(_ qkv: UnsafePointer<Float>, channels c: Int, heads: Int, scale: Float, tokens t: Int,
                       output: UnsafeMutablePointer<Float>) {
        let d = c / heads
        var valuesByToken = [Float](repeating: 0, count: t * d)
        var scores = [Float](repeating: 0, count: t), mixed = [Float](repeating: 0, count: d)
        valuesByToken.withUnsafeMutableBufferPointer { vT in
            scores.withUnsafeMutableBufferPointer { p in
                mixed.withUnsafeMutableBufferPointer { acc in
                    for h in 0..<heads {
                        let q = qkv + h * d * t, k = q + c * t, v = q + 2 * c * t
                        for e in 0..<d { for j in 0..<t { vT[j * d + e] = v[e * t + j] } }
                        for i in 0..<t {
                            p.update(repeating: 0)
                            for e in 0..<d {
                                let qe = q[e * t + i] * scale, keys = k + e * t
                                for j in 0..<t { p[j] += qe * keys[j] }
                            }
                            var largest = -Float.infinity
                            for j in 0..<t { largest = max(largest, p[j]) }
                            var total: Float = 0
                            for j in 0..<t { p[j] = expf(p[j] - largest); total += p[j] }
                            acc.update(repeating: 0)
                            for j in 0..<t {
                                let weight = p[j], value = vT.baseAddress! + j * d
                                for e in 0..<d { acc[e] += weight * value[e] }
                            }
                            let inverse = 1 / total
                            for e in 0..<d { output[(h * d + e) * t + i] = acc[e] * inverse }
                        }
                    }
                }
            }
        }
    }
}
