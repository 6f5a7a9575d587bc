/// Where an evaluation produced logits that are not finite: the image, the sub-network
/// (its gate vector), the first bad logit, and the first place of the forward pass whose
/// output is not finite, found by running that one image again on the reference engine.
public struct NonFiniteLogits: Sendable, Equatable, CustomStringConvertible {
    /// A place of the forward pass, in order.
    public enum Stage: Sendable, Equatable, CustomStringConvertible {
        /// The (normalized) image itself.
        case input
        case stem
        /// Block `l`, numbered 1...L.
        case block(Int)
        /// Final norm, pooling and the linear layer.
        case head

        public var description: String {
            switch self {
            case .input: return "the normalized image itself"
            case .stem: return "the stem"
            case .block(let l): return "block \(l)"
            case .head: return "the head (pooling and the linear layer)"
            }
        }
    }

    /// The data set the image belongs to, when the batch came from one (set by the batch
    /// loop that read it); nil for a batch handed to ``Evaluator`` directly.
    public var source: String?
    /// The image: its index in the data set when ``source`` is set, otherwise in the batch.
    public var image: Int
    /// The sub-network: one gate per block.
    public var gates: [Float]
    /// The first class whose logit is not finite, and that logit.
    public var logitClass: Int
    public var value: Float
    /// The first stage whose output is not finite on the reference engine; nil when the
    /// reference engine computes finite logits for the image (the fast engine's fault).
    public var stage: Stage?

    public init(source: String? = nil, image: Int, gates: [Float], logitClass: Int, value: Float, stage: Stage?) {
        self.source = source
        self.image = image
        self.gates = gates
        self.logitClass = logitClass
        self.value = value
        self.stage = stage
    }

    public var description: String {
        let place = source.map { "\($0): image \(image)" } ?? "image \(image) of the batch"
        let vector = gates.map { $0 == $0.rounded() && abs($0) < 1e6 ? String(Int($0)) : "\($0)" }.joined(separator: ",")
        let origin: String
        switch stage {
        case .some(.input): origin = "the normalized image itself is not finite (check the images and the normalization mean and std)"
        case .some(let stage): origin = "values stop being finite in \(stage)"
        case nil: origin = "the reference engine computes finite logits for this image, so the fast engine is at fault"
        }
        return "\(place): logits are not finite under the sub-network with gates \(vector) (class \(logitClass) is \(value)); \(origin)"
    }
}

/// Whether all `count` values from `values` are finite.
func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
    for i in 0..<count where !values[i].isFinite { return false }
    return true
}
