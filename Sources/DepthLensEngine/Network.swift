import DepthLensFormats
import DepthLensModel

/// A network ready for evaluation: its ``ModelDescription`` lowered to stem layers,
/// residual blocks 1...L and a head, with every batch norm folded into the convolution
/// before it where the topology allows.
public struct Network: Sendable {
    public let architecture: Architecture
    /// What the network computes; the layers below are its evaluation form.
    public let model: ModelDescription
    let stemLayers: [Layer]
    private(set) var blocks: [ResidualBlock]
    let head: ClassifierHead
    /// Weights in the fast engine's formats, prepared on first use and shared by every
    /// copy of this network, reordered ones included.
    let fusedWeights = FusedWeightsCache()

    /// Number of residual blocks L.
    public var blockCount: Int { blocks.count }

    /// The number (1-based) of the block that runs in each position: 1...L unless reordered.
    public var blockOrder: [Int] { blocks.map(\.index) }

    /// Builds the evaluation form of a loaded, verified checkpoint.
    public init(checkpoint: Checkpoint) {
        architecture = checkpoint.architecture
        model = checkpoint.architecture.modelDescription
        let lowering = Lowering(tensors: checkpoint.tensors)
        stemLayers = lowering.layers(model.stem)
        // Numbered by unit (1...units): a transformer block's two branches are two units.
        blocks = model.units.enumerated().map { u, unit in
            var block = lowering.block(unit)
            block.index = u + 1
            return block
        }
        head = lowering.head(model.head)
    }

    /// The same network with its blocks run in another order: block `order[i]` (1-based)
    /// runs in position i + 1. Only blocks whose input and output shapes are equal (an
    /// identity shortcut) may move, and only within their stage (Veit et al. 2016).
    /// Gates given to the reordered network are indexed by position: gate i applies to
    /// the block that runs i-th.
    /// - Throws: ``BlockOrderError`` when `order` is not a permutation of 1...L or moves a
    ///   block that changes shape or crosses a stage.
    public func reordered(_ order: [Int]) throws -> Network {
        guard order.count == blocks.count, Set(order) == Set(1...blocks.count) else {
            throw BlockOrderError.notAPermutation(blockCount: blocks.count)
        }
        for (position, index) in order.enumerated() where index != position + 1 {
            let moved = blocks[index - 1], place = blocks[position]
            guard moved.isIdentity, place.isIdentity, moved.stage == place.stage else {
                throw BlockOrderError.cannotMove(block: index, position: position + 1)
            }
        }
        var copy = self
        copy.blocks = order.map { blocks[$0 - 1] }
        return copy
    }

    /// Groups of blocks (1-based) that may be swapped with each other: the identity-shortcut
    /// blocks of each stage.
    public var swappableGroups: [[Int]] {
        Dictionary(grouping: blocks.filter(\.isIdentity), by: \.stage)
            .sorted { $0.key < $1.key }.map { $0.value.map(\.index) }
    }

    /// The activation shape (channels, height, width) after the stem and after each block,
    /// for an input of the given size, in running order.
    /// - Throws: ``EvaluationError`` when a layer cannot take that size (an average-pool
    ///   shortcut needs sides divisible by its stride, as in PyTorch's `avg_pool2d`).
    public func activationShapes(height: Int, width: Int) throws -> [(channels: Int, height: Int, width: Int)] {
        let units = blocks.map { model.units[$0.index - 1] }
        var shapes: [ActivationShape]
        do {
            shapes = [try ModelDescription.run(model.stem, from: ActivationShape(channels: model.inputChannels,
                                                                                       height: height, width: width),
                                               place: "the stem")]
            for unit in units { shapes.append(try unit.outputShape(shapes[shapes.count - 1])) }
        } catch let error as ShapeError {
            throw EvaluationError.inputSize("a \(height)x\(width) image: \(error)")
        }
        return shapes.map { ($0.channels, $0.height, $0.width) }
    }

    /// Whether the fused engine lowers every layer: it runs ordinary and depthwise
    /// convolutions, not other grouped ones (no family has them; the reference engine
    /// does), and no grouped convolution on the plain input images.
    var fusedEngineRuns: Bool {
        if case .convolution(let first, _) = stemLayers.first, first.groups != 1 { return false }
        let layers = stemLayers + blocks.flatMap { $0.preActivation + $0.branch + $0.shortcut }
        return layers.allSatisfy { layer in
            guard case .convolution(let conv, _) = layer else { return true }
            return conv.groups == 1 || (conv.groups == conv.inChannels && conv.groups == conv.outChannels)
        }
    }

    /// Floats of the largest activation one image produces anywhere in the network:
    /// block outputs and the output of every layer inside the stem and the blocks.
    func largestActivation(height: Int, width: Int) throws -> Int {
        let shapes = try activationShapes(height: height, width: width).map {
            ActivationShape(channels: $0.channels, height: $0.height, width: $0.width)
        }
        let input = ActivationShape(channels: model.inputChannels, height: height, width: width)
        var largest = (Layer.shapes(stemLayers, from: input) + shapes).map(\.count).max() ?? 0
        for (l, block) in blocks.enumerated() {
            largest = max(largest, block.innerShapes(input: shapes[l]).map(\.count).max() ?? 0)
        }
        return largest
    }
}

extension ResidualBlock {
    /// Every shape produced inside the block for an input of `shape`: after each layer of
    /// its pre-activation, branch and shortcut.
    func innerShapes(input shape: ActivationShape) -> [ActivationShape] {
        let activated = Layer.shapes(preActivation, from: shape)
        let branchInput = activated.last ?? shape
        return activated + Layer.shapes(branch, from: branchInput)
            + Layer.shapes(shortcut, from: shortcutReadsPreActivated ? branchInput : shape)
    }
}

/// A block order that ``Network/reordered(_:)`` cannot run.
public enum BlockOrderError: Error, CustomStringConvertible, Equatable {
    /// The order is not a permutation of 1...L.
    case notAPermutation(blockCount: Int)
    /// The block changes shape or would leave its stage.
    case cannotMove(block: Int, position: Int)

    public var description: String {
        switch self {
        case .notAPermutation(let count): return "a block order must be a permutation of 1...\(count)"
        case .cannotMove(let block, let position):
            return "block \(block) cannot run in position \(position): only identity-shortcut blocks move, within their stage"
        }
    }
}
