import DepthLensPluginAPI

/// What a network computes, written once per model family: its operations in forward
/// order, grouped into a stem, gated residual units and a head, and the tensors they
/// read. The expected-tensor table, `depthlens inspect`, both evaluation engines and
/// batch-norm recalibration all read this description; nothing else knows a family's
/// layout (docs/architecture.md).
///
/// A gate vector addresses the ``units`` in order: gate l scales the branch of unit l.
/// For the ResNets every block is one unit; a family whose blocks hold several residual
/// branches (a transformer's attention and MLP) lists a unit per branch.
public struct ModelDescription: Sendable, Equatable {
    /// The family the description was built for (`cifar_resnet`, `imagenet_resnet`).
    public var family: String
    public var inputChannels: Int
    public var classes: Int
    /// Operations on the image before the first residual unit.
    public var stem: [ModelOperation]
    /// The gated residual units, in forward order.
    public var units: [ResidualUnit]
    /// Operations after the last unit, ending in the logits.
    public var head: [ModelOperation]

    public init(family: String, inputChannels: Int, classes: Int, stem: [ModelOperation], units: [ResidualUnit],
                head: [ModelOperation]) {
        (self.family, self.inputChannels, self.classes) = (family, inputChannels, classes)
        (self.stem, self.units, self.head) = (stem, units, head)
    }

    /// Every tensor the network reads, by `state_dict` key, in forward order.
    public var tensors: [TensorDescription] {
        (stem + units.flatMap(\.operations) + head).flatMap(\.tensors)
    }

    /// Whether any operation is a batch norm (what recalibration re-estimates).
    public var hasBatchNorm: Bool {
        (stem + units.flatMap(\.operations) + head).contains { if case .batchNorm = $0 { return true } else { return false } }
    }

    /// Number of learned parameters (batch-norm running statistics excluded).
    public var parameterCount: Int {
        tensors.filter(\.role.isLearned).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// The shape after the stem (index 0) and after each unit (index l), for an image of
    /// `height` x `width`.
    /// - Throws: ``ShapeError`` naming the first operation that cannot take its input.
    public func activationShapes(height: Int, width: Int) throws -> [ActivationShape] {
        var shape = try Self.run(stem, from: ActivationShape(channels: inputChannels, height: height, width: width),
                                 place: "the stem")
        var shapes = [shape]
        for unit in units {
            shape = try unit.outputShape(shape)
            shapes.append(shape)
        }
        return shapes
    }

    /// The shape after `operations`, checked step by step.
    package static func run(_ operations: [ModelOperation], from shape: ActivationShape, place: String) throws -> ActivationShape {
        try operations.reduce(shape) { shape, op in
            guard let next = op.outputShape(shape) else {
                throw ShapeError(place: place, operation: op, input: shape)
            }
            return next
        }
    }
}

/// One gated residual unit: `afterAdd(shortcut(s) + g * branch(pre(x)))`, where `s` is
/// the unit input `x` or the pre-activated `pre(x)` (``shortcutInput``). A gate of 0 drops
/// the branch; an empty ``shortcut`` is the identity.
public struct ResidualUnit: Sendable, Equatable {
    /// Where the shortcut reads from.
    public enum ShortcutInput: String, Sendable, Equatable {
        /// The unit's input x.
        case unitInput
        /// The pre-activated input pre(x), as the branch (pre-activation projections).
        case preActivated
    }

    /// The block this unit belongs to, numbered 1...L in forward order.
    public var block: Int
    /// Stage number, from 1.
    public var stage: Int
    /// The `state_dict` name of the block, such as `layer2.0`.
    public var name: String
    public var inChannels: Int
    public var outChannels: Int
    /// The branch's stride (1 or the stage's first stride).
    public var stride: Int
    /// Operations shared by the branch and, with ``ShortcutInput/preActivated``, the shortcut.
    public var preActivation: [ModelOperation]
    /// The residual branch the gate scales.
    public var branch: [ModelOperation]
    /// The shortcut path; empty for the identity.
    public var shortcut: [ModelOperation]
    public var shortcutInput: ShortcutInput
    /// Operations after the add (ReLU in post-activation ResNets).
    public var afterAdd: [ModelOperation]
    /// Which residual branch of its block this unit is, for blocks of several (`attn`,
    /// `mlp` in a vision transformer); empty when the block has one.
    public var branchName: String

    public init(block: Int, stage: Int, name: String, inChannels: Int, outChannels: Int, stride: Int,
                preActivation: [ModelOperation] = [], branch: [ModelOperation], shortcut: [ModelOperation] = [],
                shortcutInput: ShortcutInput = .unitInput, afterAdd: [ModelOperation] = [], branchName: String = "") {
        (self.block, self.stage, self.name, self.branchName) = (block, stage, name, branchName)
        (self.inChannels, self.outChannels, self.stride) = (inChannels, outChannels, stride)
        (self.preActivation, self.branch, self.shortcut) = (preActivation, branch, shortcut)
        (self.shortcutInput, self.afterAdd) = (shortcutInput, afterAdd)
    }

    /// Whether the shortcut passes the unit input unchanged (the unit can then move when
    /// blocks are reordered, and costs nothing when dropped). A unit whose empty shortcut
    /// reads the pre-activated input (ConvNeXt's downsampling first block) has none: its
    /// pre-activation changes the shape, dropped or not.
    public var hasIdentityShortcut: Bool { shortcut.isEmpty && (shortcutInput == .unitInput || preActivation.isEmpty) }

    /// The unit's operations in `state_dict` order: branch first, then the shortcut's
    /// projection (as the PyTorch modules register them).
    public var operations: [ModelOperation] { preActivation + branch + shortcut + afterAdd }

    /// The output shape for an input of `shape`.
    /// - Throws: ``ShapeError`` naming the operation that cannot take its input.
    public func outputShape(_ shape: ActivationShape) throws -> ActivationShape {
        let place = "block \(block) (\(name)\(branchName.isEmpty ? "" : ", \(branchName) branch"))"
        let activated = try ModelDescription.run(preActivation, from: shape, place: place)
        let residual = try ModelDescription.run(branch, from: activated, place: place)
        let passed = try ModelDescription.run(shortcut, from: shortcutInput == .unitInput ? shape : activated, place: place)
        guard residual == passed else {
            throw ShapeError(place: place, message: "its branch gives \(residual.channels)x\(residual.height)x\(residual.width) "
                             + "but its shortcut \(passed.channels)x\(passed.height)x\(passed.width)")
        }
        return try ModelDescription.run(afterAdd, from: residual, place: place)
    }
}

/// What a tensor is to the operation that reads it.
public enum TensorRole: String, Sendable, Equatable, CaseIterable {
    case convolutionWeight = "conv weight"
    case convolutionBias = "conv bias"
    case normScale = "norm scale"
    case normShift = "norm shift"
    case runningMean = "running mean"
    case runningVariance = "running var"
    case linearWeight = "linear weight"
    case linearBias = "linear bias"
    case classToken = "class token"
    case positionEmbedding = "position embedding"
    /// A per-channel layer-scale factor (`gamma`).
    case layerScale = "layer scale"

    /// Whether training learns it (running statistics are estimated, not learned).
    public var isLearned: Bool { self != .runningMean && self != .runningVariance }
}

/// One tensor a network reads: its `state_dict` key, shape and role.
public struct TensorDescription: Sendable, Equatable {
    public var key: String
    public var shape: [Int]
    public var role: TensorRole

    public init(key: String, shape: [Int], role: TensorRole) {
        (self.key, self.shape, self.role) = (key, shape, role)
    }
}

/// An input a network cannot take: an operation whose input shape does not fit.
public struct ShapeError: Error, CustomStringConvertible, Equatable {
    public var place: String
    public var message: String

    public init(place: String, message: String) {
        (self.place, self.message) = (place, message)
    }

    init(place: String, operation: ModelOperation, input: ActivationShape) {
        let size = "\(input.channels)x\(input.height)x\(input.width)"
        if case .transformer(let t) = operation, let why = t.misfit(input) {
            self.init(place: place, message: why)
        } else if case .zeroChannels(let z) = operation, z.averagePool {
            self.init(place: place, message: "its average-pool shortcut with stride \(z.stride) needs a \(input.height)x\(input.width) "
                      + "input to divide evenly; give images whose sides are multiples of the total stride")
        } else {
            self.init(place: place, message: "\(operation.summary) cannot take a \(size) input (it leaves nothing or the channels differ)")
        }
    }

    public var description: String { "\(place): \(message)" }
}
