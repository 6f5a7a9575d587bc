import DepthLensModel

/// What one entry of a gate vector addresses, for families whose blocks hold several
/// residual branches (a vision transformer's attention and MLP). For the ResNets, whose
/// blocks are one branch each, both are the same.
public enum GateUnit: String, Sendable, CaseIterable {
    /// One gate per block, shared by all its branches: a lesion drops the whole block.
    case block
    /// One gate per residual branch, in forward order (block 1 attention, block 1 MLP,
    /// block 2 attention, ...): timm's drop path, which draws each branch on its own.
    case branch
}

extension Network {
    /// Whether some block holds more than one residual branch.
    public var hasSeveralBranchesPerBlock: Bool { Set(branchBlocks).count < branchBlocks.count }

    /// The model's block number (1-based) of every residual unit, in running order.
    var branchBlocks: [Int] { blocks.map { model.units[$0.index - 1].block } }

    /// For each residual unit in running order, the index of the gate that drives it when
    /// gates address `unit`s; nil when that is the units themselves.
    func gateIndex(_ unit: GateUnit) -> [Int]? {
        guard unit == .block else { return nil }
        let owners = branchBlocks
        guard Set(owners).count < owners.count else { return nil }
        // Blocks in the order their first branch runs.
        var order: [Int] = []
        for b in owners where !order.contains(b) { order.append(b) }
        return owners.map { order.firstIndex(of: $0)! }
    }

    /// The number of entries a gate vector has when it addresses `unit`s.
    public func gateCount(_ unit: GateUnit) -> Int {
        gateIndex(unit).map { ($0.max() ?? -1) + 1 } ?? blockCount
    }

    /// The residual units (1-based, as ``reordered(_:)`` takes them) of a block order
    /// given in `unit`s: each block's branches, in their order.
    public func unitOrder(_ order: [Int], unit: GateUnit) -> [Int] {
        guard unit == .block, let index = gateIndex(.block) else { return order }
        return order.flatMap { gate in index.indices.filter { index[$0] == gate - 1 }.map { blocks[$0].index } }
    }

    /// A name for every gate entry when gates address `unit`s: `blocks.3` or
    /// `blocks.3 attn` (state_dict names), `layer2.0` for the ResNets.
    public func gateNames(_ unit: GateUnit) -> [String] {
        let units = blocks.map { model.units[$0.index - 1] }
        if let index = gateIndex(unit) {
            return (0..<gateCount(unit)).map { g in units[index.firstIndex(of: g)!].name }
        }
        return units.map { $0.branchName.isEmpty ? $0.name : "\($0.name) \($0.branchName)" }
    }
}

extension Gates {
    /// These gates, given one entry per gate unit, as one entry per residual unit.
    func expanded(_ index: [Int]?) -> Gates {
        guard let index else { return self }
        switch self {
        case .allOn: return .allOn
        case .shared(let v): return .shared(index.map { v[$0] })
        case .perExample(let vs): return .perExample(vs.map { v in index.map { v[$0] } })
        }
    }
}

extension Network {
    /// Groups of gate entries (1-based) that may be swapped with each other when gates
    /// address `unit`s: blocks (or branches) whose shortcuts are the identity, by stage.
    public func swappableGroups(_ unit: GateUnit) -> [[Int]] {
        guard let index = gateIndex(unit) else { return swappableGroups }
        var groups: [Int: [Int]] = [:]
        for gate in 0..<((index.max() ?? -1) + 1) {
            let members = index.indices.filter { index[$0] == gate }.map { blocks[$0] }
            if members.allSatisfy(\.isIdentity) { groups[members[0].stage, default: []].append(gate + 1) }
        }
        return groups.sorted { $0.key < $1.key }.map(\.value)
    }

    /// p of every gate entry when gates address `unit`s, from p of every block: each branch
    /// of a block has the block's (timm draws a transformer block's two branches
    /// independently at the block's rate).
    public func survivalPerGate(_ perBlock: [Double], unit: GateUnit) -> [Double] {
        guard gateIndex(unit) == nil, hasSeveralBranchesPerBlock else { return perBlock }
        return branchBlocks.map { perBlock[$0 - 1] }
    }
}
