import DepthLensFormats
import DepthLensModel

/// The gates of a forward pass: for every block l, a factor g_l on its residual branch.
///
/// Block l computes out = post(shortcut(x) + g_l * residual(x)). A gate of exactly 0
/// drops the block: its residual branch is not computed at all and only the shortcut
/// (with any downsampling and channel padding) passes. A gate of 1 is the plain block;
/// any other value scales the residual (p_l under the expectation rule, 1/p_l for a
/// kept block when sampling an inverted-trained network).
public enum Gates: Sendable, Equatable {
    /// Every block on (g_l = 1).
    case allOn
    /// One gate vector (length L) shared by the whole batch.
    case shared([Float])
    /// One gate vector per example: N vectors of length L.
    case perExample([[Float]])

    /// The deterministic network of a test-time rule: p_l for the expectation rule,
    /// all ones for the inverted rule (the weights already absorb 1/p_l).
    public static func deterministic(rule: TrainingMetadata.TestTimeRule, survival: [Double]) -> Gates {
        switch rule {
        case .expectation: return .shared(survival.map { Float($0) })
        case .inverted: return .allOn
        }
    }

    /// Gates from a keep mask under a rule, as during training: kept blocks get 1
    /// (expectation-trained) or 1/p_l (inverted-trained); dropped blocks get 0.
    public static func sampled(keep: [Bool], rule: TrainingMetadata.TestTimeRule, survival: [Double]) -> [Float] {
        zip(keep, survival).map { kept, p in
            guard kept else { return 0 }
            return rule == .inverted ? Float(1 / p) : 1
        }
    }

    /// Checks lengths and values against a network of `blockCount` blocks and a batch of `count` examples.
    func validate(blockCount: Int, count: Int) throws {
        func check(_ vector: [Float], _ place: String) throws {
            guard vector.count == blockCount else {
                throw EvaluationError.gates("\(place) has \(vector.count) entries but the network has \(blockCount) blocks")
            }
            if let bad = vector.firstIndex(where: { !$0.isFinite }) {
                throw EvaluationError.gates("\(place) entry for block \(bad + 1) is \(vector[bad]); gates must be finite")
            }
        }
        switch self {
        case .allOn: return
        case .shared(let vector): try check(vector, "the gate vector")
        case .perExample(let vectors):
            guard vectors.count == count else {
                throw EvaluationError.gates("\(vectors.count) per-example gate vectors for a batch of \(count) images")
            }
            for (i, vector) in vectors.enumerated() { try check(vector, "the gate vector of example \(i)") }
        }
    }

    /// The gate of block `block` (0-based) for example `example`.
    @inline(__always)
    func gate(block: Int, example: Int) -> Float {
        switch self {
        case .allOn: return 1
        case .shared(let vector): return vector[block]
        case .perExample(let vectors): return vectors[example][block]
        }
    }
}

/// Why a forward pass could not run (the images or gates do not fit the network), or why
/// its result cannot be used (logits that are not finite).
public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    case inputSize(String)
    case gates(String)
    /// An image's logits under a sub-network hold NaN or an infinity.
    case nonFiniteLogits(NonFiniteLogits)
    /// The network has an operation the asked computation does not run (the backward pass
    /// of a family other than the ResNets).
    case unsupported(String)

    public var description: String {
        switch self {
        case .inputSize(let message): return "images do not fit the network: \(message)"
        case .gates(let message): return "bad gates: \(message)"
        case .nonFiniteLogits(let details): return details.description
        case .unsupported(let message): return message
        }
    }
}
