import DepthLensPluginAPI

/// The operations only a vision transformer needs (timm's `VisionTransformer`), as one
/// case of ``ModelOperation`` (``ModelOperation/transformer(_:)``).
///
/// Tokens are stored as an activation of C x 1 x T: channel c of token t sits at
/// `c * T + t`, which is exactly the memory of the patch embedding's C x H x W output
/// (T = H W, row-major), so turning the feature map into tokens is a view. Operations
/// that work "at every position" (layer norm, GELU, a pointwise linear layer, layer
/// scale; ``ModelOperation``) then work at every token.
public enum TransformerOperation: Sendable, Equatable {
    /// C x H x W -> C x 1 x HW: the patch grid read as tokens, row by row (timm's
    /// `flatten(2).transpose(1, 2)`, here a view).
    case tokens
    /// Prepends the learned class token `KEY` of shape (1, 1, C) as token 0.
    case classToken(key: String, channels: Int)
    /// Adds the learned position embedding `KEY` of shape (1, tokens, C) to every token
    /// (the class token included: timm's default, `no_embed_class=False`).
    case positionEmbedding(key: String, channels: Int, tokens: Int)
    /// Multi-head self-attention over all tokens (timm's `Attention`).
    case selfAttention(AttentionSpec)
    /// Keeps token 0, the class token: C x 1 x T -> C x 1 x 1 (`global_pool='token'`).
    case classTokenPool
    /// The mean of tokens `prefixTokens...` (the patch tokens, leaving out the class
    /// token): C x 1 x T -> C x 1 x 1 (`global_pool='avg'`).
    case tokenMeanPool(prefixTokens: Int)
}

/// timm's `Attention`: `KEY.qkv` (weight (3C, C), bias (3C) when `qkvBias`) computes the
/// queries, keys and values of every token (q, k, v each C wide, head h owning channels
/// h d ..< (h + 1) d of each, d = C / heads); each head's attention is
/// softmax(q kᵀ d^-1/2) v; the heads, concatenated, go through `KEY.proj` (weight
/// (C, C), bias (C)).
public struct AttentionSpec: Sendable, Equatable {
    public var key: String
    public var channels: Int
    public var heads: Int
    public var qkvBias: Bool

    public init(key: String, channels: Int, heads: Int, qkvBias: Bool) {
        (self.key, self.channels, self.heads, self.qkvBias) = (key, channels, heads, qkvBias)
    }

    /// Channels per head.
    public var headDimension: Int { channels / heads }
    /// The factor on q kᵀ: head_dim^-0.5, as timm.
    public var scale: Double { 1 / Double(headDimension).squareRoot() }
}

extension TransformerOperation {
    /// The tensors the operation reads, in `state_dict` order.
    public var tensors: [TensorDescription] {
        switch self {
        case .classToken(let key, let channels):
            return [TensorDescription(key: key, shape: [1, 1, channels], role: .classToken)]
        case .positionEmbedding(let key, let channels, let tokens):
            return [TensorDescription(key: key, shape: [1, tokens, channels], role: .positionEmbedding)]
        case .selfAttention(let a):
            let c = a.channels
            var list = [TensorDescription(key: a.key + ".qkv.weight", shape: [3 * c, c], role: .linearWeight)]
            if a.qkvBias { list.append(TensorDescription(key: a.key + ".qkv.bias", shape: [3 * c], role: .linearBias)) }
            return list + [TensorDescription(key: a.key + ".proj.weight", shape: [c, c], role: .linearWeight),
                           TensorDescription(key: a.key + ".proj.bias", shape: [c], role: .linearBias)]
        case .tokens, .classTokenPool, .tokenMeanPool:
            return []
        }
    }

    /// The output shape for an input of `shape`, or nil when the operation cannot take it.
    public func outputShape(_ shape: ActivationShape) -> ActivationShape? {
        let (c, h, w) = (shape.channels, shape.height, shape.width)
        switch self {
        case .tokens:
            return ActivationShape(channels: c, height: 1, width: h * w)
        case .classToken(_, let channels):
            guard c == channels, h == 1 else { return nil }
            return ActivationShape(channels: c, height: 1, width: w + 1)
        case .positionEmbedding(_, let channels, let tokens):
            guard c == channels, h == 1, w == tokens else { return nil }
            return shape
        case .selfAttention(let a):
            guard c == a.channels, h == 1 else { return nil }
            return shape
        case .classTokenPool:
            guard h == 1, w >= 1 else { return nil }
            return ActivationShape(channels: c, height: 1, width: 1)
        case .tokenMeanPool(let prefix):
            guard h == 1, w > prefix else { return nil }
            return ActivationShape(channels: c, height: 1, width: 1)
        }
    }

    /// A short name for messages and `inspect`.
    public var summary: String {
        switch self {
        case .tokens: return "patches to tokens"
        case .classToken(_, let c): return "class token \(c)"
        case .positionEmbedding(_, let c, let n): return "position embedding \(n)x\(c)"
        case .selfAttention(let a): return "self-attention \(a.channels), \(a.heads) heads\(a.qkvBias ? "" : ", qkv without bias")"
        case .classTokenPool: return "class token pool"
        case .tokenMeanPool(let p): return p == 0 ? "mean over tokens" : "mean over tokens (class token left out)"
        }
    }

    /// Why a shape does not fit, in words, for ``ShapeError``.
    func misfit(_ shape: ActivationShape) -> String? {
        switch self {
        case .positionEmbedding(_, let c, let n) where shape.channels == c && shape.height == 1 && shape.width != n:
            return "the position embedding has \(n) tokens but the image gives \(shape.width); "
                + "give images of the size the network was built for"
        default:
            return nil
        }
    }
}
