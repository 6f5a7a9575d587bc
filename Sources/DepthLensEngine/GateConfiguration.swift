import DepthLensFormats
import DepthLensModel

/// One deterministic gate configuration as a user states it: a test-time rule, blocks
/// to drop, or an explicit vector. Resolved against a checkpoint into ``Gates``.
public struct GateConfiguration: Sendable, Equatable {
    /// Form the deterministic network of this rule (needs recorded survival
    /// probabilities for the expectation rule); nil means every block on.
    public var rule: TrainingMetadata.TestTimeRule?
    /// Blocks to drop, numbered 1...L.
    public var drop: [Int]
    /// An explicit gate per block (0 off, 1 on, other values scale the residual).
    public var explicit: [Float]?

    public init(rule: TrainingMetadata.TestTimeRule? = nil, drop: [Int] = [], explicit: [Float]? = nil) {
        self.rule = rule
        self.drop = drop
        self.explicit = explicit
    }

    /// The gate vector for `checkpoint`.
    /// - Throws: ``EvaluationError/gates(_:)`` for a block number outside 1...L, a vector of the
    ///   wrong length, or the expectation rule on a checkpoint without survival probabilities.
    public func resolve(for checkpoint: Checkpoint) throws -> [Float] {
        let count = checkpoint.blockCount
        var gates: [Float]
        if let explicit {
            guard rule == nil else { throw EvaluationError.gates("give either an explicit gate vector or a rule, not both") }
            guard explicit.count == count else {
                throw EvaluationError.gates("the gate vector has \(explicit.count) entries but the network has \(count) blocks")
            }
            if let bad = explicit.firstIndex(where: { !$0.isFinite }) {
                throw EvaluationError.gates("gate of block \(bad + 1) is \(explicit[bad]); gates must be finite")
            }
            gates = explicit
        } else if let rule {
            switch rule {
            case .inverted:
                gates = [Float](repeating: 1, count: count)
            case .expectation:
                guard let p = checkpoint.training?.survivalProbabilities else {
                    throw EvaluationError.gates("the expectation rule needs survival probabilities, and \(checkpoint.path) records none; give an explicit gate vector")
                }
                gates = p.map { Float($0) }
            }
        } else {
            gates = [Float](repeating: 1, count: count)
        }
        for block in drop {
            guard (1...count).contains(block) else {
                throw EvaluationError.gates("block \(block) does not exist; the network has blocks 1...\(count)")
            }
            gates[block - 1] = 0
        }
        return gates
    }
}
