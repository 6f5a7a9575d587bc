/// Evaluation-time layers with batch norm already folded in. Internal: the public face
/// of a network is ``Network``; these are what the kernels run.

/// A 2-D convolution (OIHW weights, square kernel, symmetric zero padding) with bias.
struct Convolution: Sendable {
    var outChannels: Int
    var inChannels: Int
    var kernel: Int
    var stride: Int
    var padding: Int
    var weight: [Float]
    var bias: [Float]

    func outputSize(_ size: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }

    /// Folds a following batch norm: w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta.
    func folding(_ norm: ChannelAffine) -> Convolution {
        var result = self
        let perChannel = inChannels * kernel * kernel
        for o in 0..<outChannels {
            for i in 0..<perChannel { result.weight[o * perChannel + i] *= norm.scale[o] }
            result.bias[o] = bias[o] * norm.scale[o] + norm.shift[o]
        }
        return result
    }
}

/// A per-channel affine map y = x * scale + shift: batch norm in evaluation mode.
struct ChannelAffine: Sendable {
    var scale: [Float]
    var shift: [Float]

    /// Batch norm with running statistics: scale = g / sqrt(v + eps), shift = beta - m * scale.
    init(weight: [Float], bias: [Float], runningMean: [Float], runningVar: [Float], eps: Double) {
        let scale = zip(weight, runningVar).map { Float(Double($0) / (Double($1) + eps).squareRoot()) }
        self.scale = scale
        shift = (0..<weight.count).map { bias[$0] - runningMean[$0] * scale[$0] }
    }
}

/// The shortcut path of a block.
enum ShortcutPath: Sendable {
    case identity
    /// Option A: spatial downsampling by `stride` (average pooling or subsampling), then
    /// `padBefore` zero channels before and `padAfter` after.
    case zeroPadded(stride: Int, averagePool: Bool, padBefore: Int, padAfter: Int)
    /// Option B: 1x1 convolution with batch norm folded in.
    case projection(Convolution)
    /// timm's `avg_down`: 2x2 average pooling with stride 2 (``ShortcutPool``), then a 1x1
    /// convolution with batch norm folded in.
    case pooledProjection(Convolution)
}

/// One residual block, ready to evaluate: out = post(shortcut(x) + g * residual(x)).
struct ResidualBlock: Sendable {
    var spec: BlockSpec
    /// Pre-activation only: bn1 applied to the block input, then ReLU, feeding conv1
    /// (and the projection shortcut).
    var preNorm: ChannelAffine?
    /// conv1 with the batch norm that follows it folded in (bn1 for basic, bn2 for preact).
    var conv1: Convolution
    /// conv2, with bn2 folded in for basic and bottleneck blocks.
    var conv2: Convolution
    /// Bottlenecks only: the last 1x1 convolution with bn3 folded in (conv2 is then
    /// followed by ReLU).
    var conv3: Convolution?
    var shortcut: ShortcutPath
    /// ReLU after the add (basic blocks).
    var reluAfterAdd: Bool
}

extension ResidualBlock {
    /// Spatial size of the block's output for an input side of `size`.
    func outputSize(_ size: Int) -> Int {
        let inner = conv2.outputSize(conv1.outputSize(size))
        return conv3.map { $0.outputSize(inner) } ?? inner
    }

    /// The convolution that ends the residual branch: the one the gate scales and the
    /// residual add is fused into.
    var lastConvolution: Convolution { conv3 ?? conv2 }
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
