import DepthLensPluginAPI

/// One step of a network as PyTorch's `forward` runs it, in a ``ModelDescription``.
///
/// Learned operations name their tensors by `state_dict` key prefix (`layer1.0.conv1`
/// owns `layer1.0.conv1.weight` and, with a bias, `layer1.0.conv1.bias`). The list of
/// cases is the vocabulary every engine and batch-norm recalibration understand; adding
/// an operation means its reference kernel (Network/Kernels.swift), its fused lowering
/// (Network/FusedEngine.swift) and its train-mode step (BatchNormRecalibration.swift):
/// docs/architecture.md walks through one.
public enum ModelOperation: Sendable, Equatable {
    /// 2-D convolution with a square kernel and symmetric zero padding.
    case convolution(ConvolutionSpec)
    /// Batch norm in evaluation mode, with running statistics.
    case batchNorm(BatchNormSpec)
    /// max(0, x), element-wise.
    case relu
    /// Square max pooling; padded positions never win (as in PyTorch).
    case maxPool(kernel: Int, stride: Int, padding: Int)
    /// 2x2 average pooling with stride 2, ceil mode, padding not counted
    /// (`nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`, timm's `avg_down`).
    case averagePool2x2
    /// Option A's shortcut: spatial downsampling, then zero channels before and after.
    case zeroChannels(ZeroChannelsSpec)
    /// The mean over all pixels of each channel.
    case globalAveragePool
    /// A fully connected layer.
    case linear(LinearSpec)
    /// A vision transformer's own operations (tokens, class token, position embedding,
    /// self-attention, token pooling): TransformerOperation.swift.
    case transformer(TransformerOperation)
    /// Layer normalisation over the channels at every spatial position (timm's
    /// `LayerNorm2d`, ConvNeXt's channels-last `LayerNorm`, and a transformer's token
    /// norm with tokens stored as C x 1 x T): biased variance, eps inside the square root,
    /// as `torch.nn.functional.layer_norm`.
    case layerNorm(LayerNormSpec)
    /// GELU in its exact form, `0.5 x (1 + erf(x / sqrt 2))` (`torch.nn.GELU()`, timm's
    /// default).
    case gelu
    /// A linear layer applied at every spatial position (or token): ConvNeXt's `mlp.fc1`
    /// and `mlp.fc2`, a transformer's `qkv`, `proj`, `fc1`, `fc2`. The same as a 1x1
    /// convolution.
    case pointwiseLinear(LinearSpec)
    /// Layer scale: each channel multiplied by `KEY` (ConvNeXt's `gamma`, a ViT's
    /// `ls1.gamma`), a tensor of `channels` values.
    case layerScale(key: String, channels: Int)
}

/// A convolution: `KEY.weight` of shape (out, in / groups, kernel, kernel), `KEY.bias`
/// when `bias`. With `groups` > 1 the channels split into that many groups convolved
/// separately (`groups` = in = out: depthwise, ConvNeXt's `conv_dw`).
public struct ConvolutionSpec: Sendable, Equatable {
    public var key: String
    public var inChannels: Int
    public var outChannels: Int
    public var kernel: Int
    public var stride: Int
    public var padding: Int
    public var bias: Bool
    /// Channel groups; divides both channel counts. 1: an ordinary convolution.
    public var groups: Int

    public init(key: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int? = nil,
                bias: Bool, groups: Int = 1) {
        (self.key, self.inChannels, self.outChannels) = (key, inChannels, outChannels)
        (self.kernel, self.stride, self.padding, self.bias) = (kernel, stride, padding ?? kernel / 2, bias)
        self.groups = groups
    }

    /// Whether every channel is convolved alone (groups = in = out channels).
    public var isDepthwise: Bool { groups > 1 && groups == inChannels && groups == outChannels }

    /// Side length of the output for an input side of `size`.
    public func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
}

/// A batch norm: `KEY.weight`, `KEY.bias`, `KEY.running_mean`, `KEY.running_var`, each
/// of `channels` values.
public struct BatchNormSpec: Sendable, Equatable {
    public var key: String
    public var channels: Int
    public var eps: Double

    public init(key: String, channels: Int, eps: Double) {
        (self.key, self.channels, self.eps) = (key, channels, eps)
    }
}

/// Option A: downsample by `stride`, then `before` zero channels ahead of the input's
/// and `after` behind them.
public struct ZeroChannelsSpec: Sendable, Equatable {
    /// Average pooling with kernel = stride (the paper's code), or taking every
    /// stride-th pixel (`x[:, :, ::s, ::s]`, common PyTorch ports).
    public var averagePool: Bool
    public var stride: Int
    public var before: Int
    public var after: Int

    public init(averagePool: Bool, stride: Int, before: Int, after: Int) {
        (self.averagePool, self.stride, self.before, self.after) = (averagePool, stride, before, after)
    }

    /// Side length of the output for an input side of `size`.
    public func outputSize(_ size: Int) -> Int { averagePool ? size / stride : (size - 1) / stride + 1 }
}

/// A fully connected layer: `KEY.weight` (out, in) and, with `bias`, `KEY.bias` (out).
/// A weight stored as a 1x1 convolution's, (out, in, 1, 1), as timm's `ConvMlp` keeps it,
/// is described with `convolutionWeight`.
public struct LinearSpec: Sendable, Equatable {
    public var key: String
    public var inFeatures: Int
    public var outFeatures: Int
    public var bias: Bool
    /// The weight is stored as (out, in, 1, 1) (a 1x1 `nn.Conv2d`), not (out, in).
    public var convolutionWeight: Bool

    public init(key: String, inFeatures: Int, outFeatures: Int, bias: Bool = true, convolutionWeight: Bool = false) {
        (self.key, self.inFeatures, self.outFeatures) = (key, inFeatures, outFeatures)
        (self.bias, self.convolutionWeight) = (bias, convolutionWeight)
    }

    /// The weight's shape as stored.
    public var weightShape: [Int] { convolutionWeight ? [outFeatures, inFeatures, 1, 1] : [outFeatures, inFeatures] }
}

/// A layer norm over `channels` values: `KEY.weight` and `KEY.bias`, each of `channels`.
public struct LayerNormSpec: Sendable, Equatable {
    public var key: String
    public var channels: Int
    public var eps: Double

    /// `eps` defaults to timm's 1e-6 (PyTorch's own `nn.LayerNorm` default is 1e-5).
    public init(key: String, channels: Int, eps: Double = 1e-6) {
        (self.key, self.channels, self.eps) = (key, channels, eps)
    }
}

/// The shape of one image's activation: channels, height, width (features as C x 1 x 1).
public struct ActivationShape: Sendable, Equatable {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        (self.channels, self.height, self.width) = (channels, height, width)
    }

    /// Values in one image's activation.
    public var count: Int { channels * height * width }
}

extension ModelOperation {
    /// The tensors the operation reads, in `state_dict` order.
    public var tensors: [TensorDescription] {
        switch self {
        case .convolution(let c):
            let weight = TensorDescription(key: c.key + ".weight",
                                           shape: [c.outChannels, c.inChannels / max(c.groups, 1), c.kernel, c.kernel],
                                           role: .convolutionWeight)
            return c.bias ? [weight, TensorDescription(key: c.key + ".bias", shape: [c.outChannels], role: .convolutionBias)] : [weight]
        case .batchNorm(let n):
            return [("weight", TensorRole.normScale), ("bias", .normShift), ("running_mean", .runningMean),
                    ("running_var", .runningVariance)].map { TensorDescription(key: "\(n.key).\($0.0)", shape: [n.channels], role: $0.1) }
        case .linear(let l), .pointwiseLinear(let l):
            let weight = TensorDescription(key: l.key + ".weight", shape: l.weightShape, role: .linearWeight)
            return l.bias ? [weight, TensorDescription(key: l.key + ".bias", shape: [l.outFeatures], role: .linearBias)] : [weight]
        case .layerNorm(let n):
            return [TensorDescription(key: n.key + ".weight", shape: [n.channels], role: .normScale),
                    TensorDescription(key: n.key + ".bias", shape: [n.channels], role: .normShift)]
        case .layerScale(let key, let channels):
            return [TensorDescription(key: key, shape: [channels], role: .layerScale)]
        case .relu, .maxPool, .averagePool2x2, .zeroChannels, .globalAveragePool, .gelu:
            return []
        case .transformer(let t):
            return t.tensors
        }
    }

    /// The output shape for an input of `shape`, or nil when the operation cannot take it
    /// (a pooling window larger than the input, a channel count that does not match).
    public func outputShape(_ shape: ActivationShape) -> ActivationShape? {
        let (c, h, w) = (shape.channels, shape.height, shape.width)
        let result: ActivationShape
        switch self {
        case .convolution(let conv):
            guard c == conv.inChannels, conv.groups >= 1, conv.inChannels % conv.groups == 0,
                  conv.outChannels % conv.groups == 0 else { return nil }
            result = ActivationShape(channels: conv.outChannels, height: conv.outputSize(h), width: conv.outputSize(w))
        case .batchNorm(let norm):
            guard c == norm.channels else { return nil }
            result = shape
        case .relu:
            result = shape
        case .maxPool(let k, let s, let p):
            result = ActivationShape(channels: c, height: (h + 2 * p - k) / s + 1, width: (w + 2 * p - k) / s + 1)
        case .averagePool2x2:
            result = ActivationShape(channels: c, height: (h + 1) / 2, width: (w + 1) / 2)
        case .zeroChannels(let z):
            // Average pooling with kernel = stride needs sides it divides (PyTorch's avg_pool2d
            // would drop the rest, the paper's code would not run).
            if z.averagePool, h % z.stride != 0 || w % z.stride != 0 { return nil }
            result = ActivationShape(channels: z.before + c + z.after, height: z.outputSize(h), width: z.outputSize(w))
        case .globalAveragePool:
            result = ActivationShape(channels: c, height: 1, width: 1)
        case .linear(let l):
            guard shape.count == l.inFeatures else { return nil }
            result = ActivationShape(channels: l.outFeatures, height: 1, width: 1)
        case .transformer(let t):
            guard let out = t.outputShape(shape) else { return nil }
            result = out
        case .pointwiseLinear(let l):
            guard c == l.inFeatures else { return nil }
            result = ActivationShape(channels: l.outFeatures, height: h, width: w)
        case .layerNorm(let n):
            guard c == n.channels else { return nil }
            result = shape
        case .layerScale(_, let channels):
            guard c == channels else { return nil }
            result = shape
        case .gelu:
            result = shape
        }
        return result.height > 0 && result.width > 0 ? result : nil
    }

    /// A short name for messages and `inspect`: `conv 3x3/2 16->32`, `batch norm 32`, ...
    public var summary: String {
        switch self {
        case .convolution(let c):
            let size = "\(c.kernel)x\(c.kernel)\(c.stride == 1 ? "" : "/\(c.stride)")"
            if c.isDepthwise { return "depthwise conv \(size) \(c.inChannels)" }
            return "conv \(size) \(c.inChannels)->\(c.outChannels)" + (c.groups == 1 ? "" : " in \(c.groups) groups")
        case .batchNorm(let n): return "batch norm \(n.channels)"
        case .relu: return "relu"
        case .maxPool(let k, let s, _): return "max pool \(k)x\(k)/\(s)"
        case .averagePool2x2: return "avg pool 2x2/2"
        case .zeroChannels(let z):
            return "\(z.averagePool ? "avg pool" : "subsample") /\(z.stride), zero channels +\(z.before)+\(z.after)"
        case .globalAveragePool: return "global avg pool"
        case .linear(let l): return "linear \(l.inFeatures)->\(l.outFeatures)"
        case .transformer(let t): return t.summary
        case .pointwiseLinear(let l): return "pointwise linear \(l.inFeatures)->\(l.outFeatures)"
        case .layerNorm(let n): return "layer norm \(n.channels)"
        case .gelu: return "gelu"
        case .layerScale(_, let channels): return "layer scale \(channels)"
        }
    }
}
