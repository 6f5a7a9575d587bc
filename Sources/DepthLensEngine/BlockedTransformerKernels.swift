/// A vision transformer's own layers on the fused engine's blocked activations: tokens
/// are C x 1 x T, so channel c of token t of a row sits at `((c / b) T + t) b + c % b`.
/// Reading patches as tokens changes no memory; attention runs on oneDNN
/// (AttentionCore.swift), between the 1x1 convolutions `qkv` and `proj`, with the gate
/// fused into `proj`.
extension BlockedKernels {
    static func transformer(_ layer: TransformerLayer, input: UnsafePointer<Float>, inShape: BlockedShape,
                            output: UnsafeMutablePointer<Float>, outShape: BlockedShape, rows: Int) {
        let b = inShape.block, t = inShape.plane
        switch layer {
        case .tokens:
            if output != UnsafeMutablePointer(mutating: input) { output.update(from: input, count: rows * inShape.rowSize) }
        case .classToken(let token):
            for r in 0..<rows {
                let src = input + r * inShape.rowSize, dst = output + r * outShape.rowSize
                for cb in 0..<inShape.channelBlocks {
                    let block = dst + cb * (t + 1) * b
                    for j in 0..<b {
                        let c = cb * b + j
                        block[j] = c < inShape.channels ? token[c] : 0
                    }
                    (block + b).update(from: src + cb * t * b, count: t * b)
                }
            }
        case .positionEmbedding(let position):
            let c = inShape.channels
            for r in 0..<rows {
                let src = input + r * inShape.rowSize, dst = output + r * outShape.rowSize
                for cb in 0..<inShape.channelBlocks {
                    for p in 0..<t {
                        for j in 0..<b {
                            let ch = cb * b + j, k = (cb * t + p) * b + j
                            dst[k] = ch < c ? src[k] + position[p * c + ch] : 0
                        }
                    }
                }
            }
        case .attention:
            preconditionFailure("the fused engine runs attention on AttentionCore")
        case .classTokenPool, .tokenMeanPool:
            let first: Int, inverse: Float
            if case .tokenMeanPool(let prefix) = layer { (first, inverse) = (prefix, 1 / Float(t - prefix)) } else { (first, inverse) = (0, 1) }
            let last = layer.isClassTokenPool ? 1 : t
            for r in 0..<rows {
                let src = input + r * inShape.rowSize, dst = output + r * outShape.rowSize
                for cb in 0..<inShape.channelBlocks {
                    for j in 0..<b {
                        var sum: Float = 0
                        for p in first..<last { sum += src[(cb * t + p) * b + j] }
                        dst[cb * b + j] = sum * inverse
                    }
                }
            }
        }
    }
}

extension TransformerLayer {
    var isClassTokenPool: Bool { if case .classTokenPool = self { return true } else { return false } }
}
