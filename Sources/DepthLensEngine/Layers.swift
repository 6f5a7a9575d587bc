import DepthLensFormats
import DepthLensModel

/// Evaluation-time layers: a ``ModelDescription``'s operations with every batch norm
/// folded into the convolution before it and every ReLU fused into the layer before it
/// (Lowering.swift). Internal: the public face of a network is ``Network``; these are
/// what the engines run.
enum Layer: Sendable {
    /// Convolution with batch norm folded in, optionally followed by ReLU.
    case convolution(Convolution, relu: Bool)
    /// A batch norm that follows no convolution (pre-activation), optionally with ReLU.
    case affine(ChannelAffine, relu: Bool)
    /// A ReLU that follows neither.
    case relu
    /// ``StemPool``: 3x3 max pooling with stride 2 and padding 1.
    case maxPool
    /// ``ShortcutPool``: 2x2 average pooling, ceil mode (timm's `avg_down`).
    case averagePool2x2
    /// Option A: downsampling, then zero channels.
    case zeroChannels(ZeroChannelsSpec)
    /// A vision transformer's own layers (TransformerKernels.swift).
    case transformer(TransformerLayer)
    /// Layer normalisation over the channels at every position.
    case layerNorm(LayerNormalization)
    /// GELU, erf form.
    case gelu

    /// The output shape for an input of `shape` (checked beforehand by the description).
    func outputShape(_ shape: ActivationShape) -> ActivationShape {
        let (c, h, w) = (shape.channels, shape.height, shape.width)
        switch self {
        case .convolution(let conv, _):
            return ActivationShape(channels: conv.outChannels, height: conv.outputSize(h), width: conv.outputSize(w))
        case .affine, .relu, .layerNorm, .gelu:
            return shape
        case .maxPool:
            return ActivationShape(channels: c, height: StemPool.outputSize(h), width: StemPool.outputSize(w))
        case .averagePool2x2:
            return ActivationShape(channels: c, height: ShortcutPool.outputSize(h), width: ShortcutPool.outputSize(w))
        case .zeroChannels(let z):
            return ActivationShape(channels: z.before + c + z.after, height: z.outputSize(h), width: z.outputSize(w))
        case .transformer(let t):
            return t.outputShape(shape)
        }
    }

    /// The shapes after each of `layers` from `shape`.
    static func shapes(_ layers: [Layer], from shape: ActivationShape) -> [ActivationShape] {
        var current = shape
        return layers.map { current = $0.outputShape(current); return current }
    }
}

/// A 2-D convolution (OIHW weights, square kernel, symmetric zero padding) with bias;
/// with `groups` > 1 the weights are (out, in / groups, k, k) and output channel o reads
/// the input channels of its group only. A pointwise linear layer is a 1x1 convolution.
struct Convolution: Sendable {
    var outChannels: Int
    var inChannels: Int
    var kernel: Int
    var stride: Int
    var padding: Int
    var weight: [Float]
    var bias: [Float]
    var groups: Int = 1

    func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }

    /// Input channels each output channel reads.
    var inChannelsPerGroup: Int { inChannels / groups }

    /// Folds a following batch norm (w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta)
    /// or layer scale (shift 0).
    func folding(_ norm: ChannelAffine) -> Convolution {
        var result = self
        let perChannel = inChannelsPerGroup * kernel * kernel
        for o in 0..<outChannels {
            for i in 0..<perChannel { result.weight[o * perChannel + i] *= norm.scale[o] }
            result.bias[o] = bias[o] * norm.scale[o] + norm.shift[o]
        }
        return result
    }
}

/// A per-channel affine map y = x * scale + shift: batch norm in evaluation mode, or
/// layer scale (shift 0).
struct ChannelAffine: Sendable {
    var scale: [Float]
    var shift: [Float]

    init(scale: [Float], shift: [Float]) {
        (self.scale, self.shift) = (scale, shift)
    }

    /// Batch norm with running statistics: scale = g / sqrt(v + eps), shift = beta - m * scale.
    init(weight: [Float], bias: [Float], runningMean: [Float], runningVar: [Float], eps: Double) {
        let scale = zip(weight, runningVar).map { Float(Double($0) / (Double($1) + eps).squareRoot()) }
        self.scale = scale
        shift = (0..<weight.count).map { bias[$0] - runningMean[$0] * scale[$0] }
    }
}

/// One gated residual unit, ready to evaluate:
/// out = relu?(shortcut(s) + g * branch(pre(x))), s = x or pre(x).
struct ResidualBlock: Sendable {
    /// The block number in the checkpoint (1-based), whatever position it runs in.
    var index: Int
    var stage: Int
    var outChannels: Int
    var preActivation: [Layer]
    var branch: [Layer]
    /// Empty for the identity.
    var shortcut: [Layer]
    var shortcutReadsPreActivated: Bool
    /// ReLU after the add (post-activation blocks).
    var reluAfterAdd: Bool

    /// The block passes its input unchanged when dropped: an empty shortcut on the unit
    /// input (not on a pre-activation that downsamples, as ConvNeXt's stage transitions).
    var isIdentity: Bool { shortcut.isEmpty && (!shortcutReadsPreActivated || preActivation.isEmpty) }
}

/// Layer normalisation over the channels at each position: y = (x - mean) / sqrt(var + eps)
/// * weight + bias, mean and biased variance over the channels.
struct LayerNormalization: Sendable {
    var weight: [Float]
    var bias: [Float]
    var eps: Float
}

/// The classifier: optional batch norm and ReLU (pre-activation networks), global average
/// pooling, an optional layer norm of the pooled features (ConvNeXt's `head.norm`), then
/// a linear layer; or, for other families, ``pooling`` (layers that end in features of
/// C x 1 x 1, such as a transformer's norm and class-token pooling), then the linear layer.
struct ClassifierHead: Sendable {
    var finalNorm: ChannelAffine?
    var pooledNorm: LayerNormalization?
    /// Empty for the ResNets' and ConvNeXt's head (global average pooling); otherwise the
    /// layers that turn the last activation into the features.
    var pooling: [Layer] = []
    /// classes x features, row-major.
    var weight: [Float]
    var bias: [Float]
    var features: Int
    var classes: Int
}

/// 2x2 average pooling with stride 2, ceil mode, padding not counted (`nn.AvgPool2d(2, 2,
/// ceil_mode=True, count_include_pad=False)`, timm's `avg_down`): a window cut by the
/// edge averages the pixels it has.
enum ShortcutPool {
    static func outputSize(_ size: Int) -> Int { (size + 1) / 2 }
}

/// 3x3 max pooling with stride 2 and padding 1 (the ImageNet stem's); padding never wins.
enum StemPool {
    static let kernel = 3, stride = 2, padding = 1

    static func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
}
