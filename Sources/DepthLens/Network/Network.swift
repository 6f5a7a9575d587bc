/// A network ready for evaluation: stem, residual blocks 1...L, head, with every batch
/// norm folded into the convolution before it where the topology allows.
public struct Network: Sendable {
    public let architecture: Architecture
    /// The stem's convolutions with their batch norms folded in: one, or three for timm's
    /// deep stem; each followed by ReLU when ``stemReLU``.
    let stemLayers: [Convolution]
    let stemReLU: Bool
    /// Whether the stem ends with 3x3/2 max pooling (``StemPool``; the ImageNet family).
    let stemMaxPool: Bool
    private(set) var blocks: [ResidualBlock]
    let finalNorm: ChannelAffine?
    /// Head weights (classes x features) and bias.
    let headWeight: [Float]
    let headBias: [Float]
    /// Weights in the fast engine's formats, prepared on first use and shared by every
    /// copy of this network, reordered ones included.
    let fusedWeights = FusedWeightsCache()

    /// Number of residual blocks L.
    public var blockCount: Int { blocks.count }

    /// The number (1-based) of the block that runs in each position: 1...L unless reordered.
    public var blockOrder: [Int] { blocks.map(\.spec.index) }

    /// Builds the evaluation form of a loaded, verified checkpoint.
    public init(checkpoint: Checkpoint) {
        let arch = checkpoint.architecture
        let t = checkpoint.tensors
        func tensor(_ key: String) -> [Float] {
            guard let value = t[key] else { preconditionFailure("verified checkpoint lacks \(key)") }
            return value.scalars
        }
        func conv(_ name: String, out: Int, in cin: Int, kernel: Int, stride: Int) -> Convolution {
            Convolution(outChannels: out, inChannels: cin, kernel: kernel, stride: stride, padding: kernel / 2,
                        weight: tensor("\(name).weight"),
                        bias: arch.convBias ? tensor("\(name).bias") : [Float](repeating: 0, count: out))
        }
        func norm(_ name: String) -> ChannelAffine {
            ChannelAffine(weight: tensor("\(name).weight"), bias: tensor("\(name).bias"),
                          runningMean: tensor("\(name).running_mean"), runningVar: tensor("\(name).running_var"),
                          eps: arch.bnEps)
        }
        let preact = arch.block == .preact
        architecture = arch
        stemLayers = arch.stemConvolutions.map { layer in
            let c = conv(layer.name, out: layer.out, in: layer.in, kernel: layer.kernel, stride: layer.stride)
            return preact ? c : c.folding(norm(layer.norm))
        }
        stemReLU = !preact
        func projection(_ spec: BlockSpec) -> ShortcutPath {
            let keys = arch.projectionKeys
            let pooled = arch.averagePoolDownsample && spec.stride == 2
            let c = conv(spec.keyPrefix + keys.conv, out: spec.outChannels, in: spec.inChannels, kernel: 1,
                         stride: pooled ? 1 : spec.stride).folding(norm(spec.keyPrefix + keys.norm))
            return pooled ? .pooledProjection(c) : .projection(c)
        }
        stemMaxPool = arch.stemMaxPool
        blocks = arch.blocks.map { spec in
            let p = spec.keyPrefix
            if arch.block == .bottleneck {
                return ResidualBlock(
                    spec: spec, preNorm: nil,
                    conv1: conv(p + "conv1", out: spec.midChannels, in: spec.inChannels, kernel: 1, stride: 1).folding(norm(p + "bn1")),
                    conv2: conv(p + "conv2", out: spec.midChannels, in: spec.midChannels, kernel: 3, stride: spec.stride)
                        .folding(norm(p + "bn2")),
                    conv3: conv(p + "conv3", out: spec.outChannels, in: spec.midChannels, kernel: 1, stride: 1).folding(norm(p + "bn3")),
                    shortcut: spec.shortcut == .projection ? projection(spec) : .identity, reluAfterAdd: true)
            }
            let c1 = conv(p + "conv1", out: spec.outChannels, in: spec.inChannels, kernel: 3, stride: spec.stride)
            let c2 = conv(p + "conv2", out: spec.outChannels, in: spec.outChannels, kernel: 3, stride: 1)
            let shortcut: ShortcutPath
            switch spec.shortcut {
            case .identity:
                shortcut = .identity
            case .projection:
                shortcut = projection(spec)
            case .zeroPadded:
                let extra = spec.outChannels - spec.inChannels
                let before = arch.channelPadding == .both ? extra / 2 : 0
                shortcut = .zeroPadded(stride: spec.stride, averagePool: arch.shortcut == .averagePoolThenPad,
                                       padBefore: before, padAfter: extra - before)
            }
            if preact {
                return ResidualBlock(spec: spec, preNorm: norm(p + "bn1"), conv1: c1.folding(norm(p + "bn2")),
                                     conv2: c2, conv3: nil, shortcut: shortcut, reluAfterAdd: false)
            }
            return ResidualBlock(spec: spec, preNorm: nil, conv1: c1.folding(norm(p + "bn1")),
                                 conv2: c2.folding(norm(p + "bn2")), conv3: nil, shortcut: shortcut, reluAfterAdd: true)
        }
        finalNorm = preact ? norm("bn_final") : nil
        headWeight = tensor("fc.weight")
        headBias = tensor("fc.bias")
    }

    /// The same network with its blocks run in another order: block `order[i]` (1-based)
    /// runs in position i + 1. Only blocks whose input and output shapes are equal (an
    /// identity shortcut) may move, and only within their stage (Veit et al. 2016).
    /// Gates given to the reordered network are indexed by position: gate i applies to
    /// the block that runs i-th.
    /// - Throws: ``EvaluationError/gates(_:)`` when `order` is not a permutation of 1...L or
    ///   moves a block that changes shape or crosses a stage.
    public func reordered(_ order: [Int]) throws -> Network {
        guard order.count == blocks.count, Set(order) == Set(1...blocks.count) else {
            throw EvaluationError.gates("a block order must be a permutation of 1...\(blocks.count)")
        }
        for (position, index) in order.enumerated() where index != position + 1 {
            let moved = blocks[index - 1].spec, place = blocks[position].spec
            guard moved.shortcut == .identity, place.shortcut == .identity, moved.stage == place.stage else {
                throw EvaluationError.gates("block \(index) cannot run in position \(position + 1): only identity-shortcut blocks move, within their stage")
            }
        }
        var copy = self
        copy.blocks = order.map { blocks[$0 - 1] }
        return copy
    }

    /// Groups of blocks (1-based) that may be swapped with each other: the identity-shortcut
    /// blocks of each stage.
    public var swappableGroups: [[Int]] {
        Dictionary(grouping: blocks.map(\.spec).filter { $0.shortcut == .identity }, by: \.stage)
            .sorted { $0.key < $1.key }.map { $0.value.map(\.index) }
    }

    /// The activation shape (channels, height, width) after the stem and after each block,
    /// for an input of the given size.
    /// - Throws: ``EvaluationError`` when a block cannot take that size (an average-pool
    ///   shortcut needs sides divisible by its stride, as in PyTorch's `avg_pool2d`).
    public func activationShapes(height: Int, width: Int) throws -> [(channels: Int, height: Int, width: Int)] {
        var (h, w) = stemOutputSize(height: height, width: width)
        guard h > 0, w > 0 else {
            throw EvaluationError.inputSize("a \(height)x\(width) image leaves nothing after the stem")
        }
        var shapes = [(channels: stem.outChannels, height: h, width: w)]
        for block in blocks {
            if case .zeroPadded(let stride, true, _, _) = block.shortcut, h % stride != 0 || w % stride != 0 {
                throw EvaluationError.inputSize(
                    "block \(block.spec.index) (\(block.spec.keyPrefix.dropLast())) has an average-pool shortcut with stride \(stride), "
                    + "which needs a \(h)x\(w) input to divide evenly; give images whose sides are multiples of the total stride")
            }
            h = block.outputSize(h)
            w = block.outputSize(w)
            shapes.append((block.spec.outChannels, h, w))
        }
        return shapes
    }

    /// The stem's last convolution.
    var stem: Convolution { stemLayers[stemLayers.count - 1] }

    /// The side lengths after the stem convolutions, before any max pooling.
    func stemConvolutionSize(height: Int, width: Int) -> (height: Int, width: Int) {
        stemLayers.reduce((height, width)) { size, conv in (conv.outputSize(size.0), conv.outputSize(size.1)) }
    }

    /// The side lengths after the whole stem (convolution, ReLU, max pooling).
    func stemOutputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        let (h, w) = stemConvolutionSize(height: height, width: width)
        return stemMaxPool ? (StemPool.outputSize(h), StemPool.outputSize(w)) : (h, w)
    }

    /// Floats of the largest activation one image produces anywhere in the network:
    /// block outputs, the stem before pooling, and the inside of every residual branch.
    func largestActivation(height: Int, width: Int) throws -> Int {
        let shapes = try activationShapes(height: height, width: width)
        var largest = shapes.map { $0.channels * $0.height * $0.width }.max() ?? 0
        var (sh, sw) = (height, width)
        for conv in stemLayers {
            (sh, sw) = (conv.outputSize(sh), conv.outputSize(sw))
            largest = max(largest, conv.outChannels * sh * sw)
        }
        for (l, block) in blocks.enumerated() {
            let (h, w) = (shapes[l].height, shapes[l].width)
            let (h1, w1) = (block.conv1.outputSize(h), block.conv1.outputSize(w))
            largest = max(largest, block.conv1.outChannels * h1 * w1,
                          block.conv2.outChannels * block.conv2.outputSize(h1) * block.conv2.outputSize(w1))
        }
        return largest
    }
}
