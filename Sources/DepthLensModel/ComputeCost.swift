/// What one image costs to push through a network, in floating-point operations (a
/// multiply-add counts two), per part of the model description: the stem, each residual
/// unit (its branch, and the rest: pre-activation, shortcut, after-add), and the head.
///
/// An estimate for planning (`--dry-run`, the balance of `--shard`), not a measurement:
/// convolutions and linear layers count their multiply-adds, every other operation one
/// operation per output value.
public struct ComputeCost: Sendable, Equatable {
    public var stem: Double
    /// Per unit, the operations its gate scales (the branch).
    public var branches: [Double]
    /// Per unit, the operations that run whatever its gate (pre-activation, shortcut, after-add).
    public var paths: [Double]
    /// Per unit, whether a dropped unit costs nothing (an identity shortcut: the engines skip it).
    public var identity: [Bool]
    public var head: Double

    /// The cost of unit `l` (0-based) under gate `gate`: nothing for a dropped identity
    /// unit, the path alone for another dropped unit, everything otherwise.
    public func unit(_ l: Int, gate: Float) -> Double {
        if gate == 0 { return identity[l] ? 0 : paths[l] }
        return branches[l] + paths[l]
    }

    /// One image through the whole network under `gates`.
    public func network(gates: [Float]) -> Double {
        stem + gates.indices.reduce(0) { $0 + unit($1, gate: gates[$1]) } + head
    }

    /// One image through the units from the first whose gate differs from `reference`'s,
    /// and the head: what a configuration adds when it is evaluated beside `reference` and
    /// shares its prefix (the fused engine's prefix sharing).
    public func suffix(gates: [Float], after reference: [Float]) -> Double {
        guard let first = gates.indices.first(where: { gates[$0] != reference[$0] }) else { return head }
        return (first..<gates.count).reduce(0) { $0 + unit($1, gate: gates[$1]) } + head
    }
}

extension ModelDescription {
    /// The estimated cost of one `height` x `width` image (``ComputeCost``).
    /// - Throws: ``ShapeError`` when the image does not fit the network.
    public func computeCost(height: Int, width: Int) throws -> ComputeCost {
        var shape = try Self.run(stem, from: ActivationShape(channels: inputChannels, height: height, width: width), place: "the stem")
        let stemCost = Self.cost(stem, from: ActivationShape(channels: inputChannels, height: height, width: width))
        var branches: [Double] = [], paths: [Double] = [], identity: [Bool] = []
        for unit in units {
            let activated = try Self.run(unit.preActivation, from: shape, place: "block \(unit.block)")
            let residual = try Self.run(unit.branch, from: activated, place: "block \(unit.block)")
            branches.append(Self.cost(unit.branch, from: activated))
            paths.append(Self.cost(unit.preActivation, from: shape)
                         + Self.cost(unit.shortcut, from: unit.shortcutInput == .unitInput ? shape : activated)
                         + Self.cost(unit.afterAdd, from: residual) + Double(residual.count))  // the add
            identity.append(unit.hasIdentityShortcut)
            shape = try unit.outputShape(shape)
        }
        return ComputeCost(stem: stemCost, branches: branches, paths: paths, identity: identity, head: Self.cost(head, from: shape))
    }

    /// Operations of `operations` on one image of `shape` (shapes already checked).
    static func cost(_ operations: [ModelOperation], from shape: ActivationShape) -> Double {
        var shape = shape
        var total = 0.0
        for op in operations {
            guard let next = op.outputShape(shape) else { break }
            total += op.operationCount(input: shape, output: next)
            shape = next
        }
        return total
    }
}

extension ModelOperation {
    /// Floating-point operations for one image: 2 per multiply-add of a convolution or
    /// linear layer (grouped and pointwise included), 1 per output value otherwise.
    func operationCount(input: ActivationShape, output: ActivationShape) -> Double {
        switch self {
        case .convolution(let c):
            // A grouped (depthwise) convolution reads in / groups channels per output value.
            return 2 * Double(c.inChannels / c.groups * c.kernel * c.kernel) * Double(output.count)
        case .linear(let l):
            return 2 * Double(l.inFeatures) * Double(l.outFeatures)
        case .pointwiseLinear(let l):
            // A linear layer at every position: in multiply-adds per output value.
            return 2 * Double(l.inFeatures) * Double(output.count)
        case .transformer(.selfAttention(let a)):
            // qkv and proj (4 C^2 per token), q k^T and the weighted sum of v (2 T C per token).
            let (c, tokens) = (Double(a.channels), Double(output.height * output.width))
            return 2 * (4 * c * c * tokens + 2 * tokens * tokens * c)
        default:
            return Double(output.count)
        }
    }
}
