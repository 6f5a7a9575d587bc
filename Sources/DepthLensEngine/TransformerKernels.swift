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
    case selfAttention(SelfAttention)
    case classTokenPool
    case tokenMeanPool(prefixTokens: Int)

    func outputShape(_ shape: ActivationShape) -> ActivationShape {
        let (c, h, w) = (shape.channels, shape.height, shape.width)
        switch self {
        case .tokens: return ActivationShape(channels: c, height: 1, width: h * w)
        case .classToken: return ActivationShape(channels: c, height: 1, width: w + 1)
        case .positionEmbedding, .selfAttention: return shape
        case .classTokenPool, .tokenMeanPool: return ActivationShape(channels: c, height: 1, width: 1)
        }
    }
}

/// timm's `Attention` with its weights: qkv (3C x C, row-major, bias 3C, zeros without
/// qkv bias), proj (C x C, bias C).
struct SelfAttention: Sendable {
    var channels: Int
    var heads: Int
    var qkvWeight: [Float]
    var qkvBias: [Float]
    var projWeight: [Float]
    var projBias: [Float]
    var scale: Float
}

extension Lowering {
    func transformer(_ op: TransformerOperation) -> TransformerLayer {
        switch op {
        case .tokens: return .tokens
        case .classToken(let key, _): return .classToken(tensor(key))
        case .positionEmbedding(let key, _, _): return .positionEmbedding(tensor(key))
        case .selfAttention(let a):
            return .selfAttention(SelfAttention(channels: a.channels, heads: a.heads, qkvWeight: tensor(a.key + ".qkv.weight"),
                                                qkvBias: a.qkvBias ? tensor(a.key + ".qkv.bias")
                                                    : [Float](repeating: 0, count: 3 * a.channels),
                                                projWeight: tensor(a.key + ".proj.weight"), projBias: tensor(a.key + ".proj.bias"),
                                                scale: Float(a.scale)))
        case .classTokenPool: return .classTokenPool
        case .tokenMeanPool(let prefix): return .tokenMeanPool(prefixTokens: prefix)
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
        case .selfAttention(let attention):
            attend(attention, input: input, tokens: t, output: output)
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

    /// out[o, t] = bias[o] + sum_i weight[o, i] x[i, t] on C x T activations (a linear
    /// layer at every token), the inner loop over tokens.
    static func tokenLinear(weight: [Float], bias: [Float], inFeatures: Int, outFeatures: Int, input: UnsafePointer<Float>,
                            tokens: Int, output: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer { w in
            for o in 0..<outFeatures {
                let dst = output + o * tokens
                dst.update(repeating: bias[o], count: tokens)
                for i in 0..<inFeatures {
                    let wv = w[o * inFeatures + i]
                    let src = input + i * tokens
                    for k in 0..<tokens { dst[k] += wv * src[k] }
                }
            }
        }
    }

    /// Multi-head self-attention on one image: qkv, per head softmax(q kᵀ scale) v, proj.
    /// Sums of products in Double for the scores and the weighted values (long sums over
    /// tokens), float elsewhere.
    static func attend(_ a: SelfAttention, input: UnsafePointer<Float>, tokens t: Int, output: UnsafeMutablePointer<Float>) {
        let c = a.channels, d = c / a.heads
        var qkv = [Float](repeating: 0, count: 3 * c * t)
        var mixed = [Float](repeating: 0, count: c * t)
        var scores = [Double](repeating: 0, count: t)
        qkv.withUnsafeMutableBufferPointer { qkv in
            tokenLinear(weight: a.qkvWeight, bias: a.qkvBias, inFeatures: c, outFeatures: 3 * c, input: input, tokens: t,
                        output: qkv.baseAddress!)
            mixed.withUnsafeMutableBufferPointer { mixed in
                for h in 0..<a.heads {
                    let q = qkv.baseAddress! + h * d * t, k = q + c * t, v = q + 2 * c * t
                    for i in 0..<t {
                        var largest = -Double.infinity
                        for j in 0..<t {
                            var dot = 0.0
                            for e in 0..<d { dot += Double(q[e * t + i]) * Double(k[e * t + j]) }
                            scores[j] = dot * Double(a.scale)
                            largest = max(largest, scores[j])
                        }
                        var total = 0.0
                        for j in 0..<t { scores[j] = exp(scores[j] - largest); total += scores[j] }
                        for e in 0..<d {
                            var sum = 0.0
                            for j in 0..<t { sum += scores[j] * Double(v[e * t + j]) }
                            mixed[(h * d + e) * t + i] = Float(sum / total)
                        }
                    }
                }
                tokenLinear(weight: a.projWeight, bias: a.projBias, inFeatures: c, outFeatures: c, input: mixed.baseAddress!,
                            tokens: t, output: output)
            }
        }
    }
}
