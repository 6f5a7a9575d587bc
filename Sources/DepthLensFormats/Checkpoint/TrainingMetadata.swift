import DepthLensModel
import Foundation

/// How a checkpoint's network was trained, as far as the exporter knew.
///
/// Stored as JSON in the checkpoint's optional `training` attribute. Every field is
/// optional; fields DepthLens does not interpret are kept in ``extras``.
public struct TrainingMetadata: Equatable, Sendable {
    /// How gates were drawn during training.
    public enum GateGranularity: String, Codable, CaseIterable, Sendable {
        /// One Bernoulli draw per block shared by the mini-batch (paper, Lua code).
        case batch
        /// One draw per block per example (timm, mmcv, torchvision `mode="row"`).
        case sample
    }

    /// How a deterministic network is formed at test time.
    public enum TestTimeRule: String, Codable, CaseIterable, Sendable {
        /// Residual scaled by p_l at test time (paper, Lua code).
        case expectation
        /// Residual divided by p_l when kept in training, identity at test (timm).
        case inverted
    }

    /// A schedule by name and parameters, as the trainer named it.
    public struct Schedule: Codable, Equatable, Sendable {
        public var name: String
        public var params: [String: Double]

        public init(name: String, params: [String: Double]) {
            self.name = name
            self.params = params
        }
    }

    /// Per-channel input normalisation: x' = (x - mean) / std, on pixels scaled to [0, 1].
    public struct Normalization: Codable, Equatable, Sendable {
        public var mean: [Double]
        public var std: [Double]

        public init(mean: [Double], std: [Double]) {
            self.mean = mean
            self.std = std
        }
    }

    public var schedule: Schedule?
    /// Survival probability p_l of every block, l = 1...L.
    public var survivalProbabilities: [Double]?
    public var gateGranularity: GateGranularity?
    public var testTimeRule: TestTimeRule?
    public var normalization: Normalization?
    public var classNames: [String]?
    public var dataset: String?
    /// Input height and width the network was trained on.
    public var inputSize: [Int]?
    /// Every other top-level field, as compact JSON text.
    public var extras: [String: String] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schedule, dataset
        case survivalProbabilities = "survival_probabilities", gateGranularity = "gate_granularity"
        case testTimeRule = "test_time_rule", normalization, classNames = "class_names", inputSize = "input_size"
    }

    private struct Known: Codable {
        var schedule: Schedule?
        var survival_probabilities: [Double]?
        var gate_granularity: GateGranularity?
        var test_time_rule: TestTimeRule?
        var normalization: Normalization?
        var class_names: [String]?
        var dataset: String?
        var input_size: [Int]?
    }

    /// Parses the `training` JSON and checks it against the architecture.
    /// - Throws: ``MetadataError`` naming the field.
    public static func parse(json: String, architecture: Architecture) throws -> TrainingMetadata {
        let data = Data(json.utf8)
        guard let object = try? JSONSerialization.jsonObject(with: data), let fields = object as? [String: Any] else {
            throw MetadataError(field: "", message: jsonProblem(json))
        }
        let known: Known
        do {
            known = try JSONDecoder().decode(Known.self, from: data)
        } catch let error as DecodingError {
            let detail = ArchitectureError(decoding: error)
            throw MetadataError(field: detail.field, message: detail.message)
        }
        var metadata = TrainingMetadata()
        metadata.schedule = known.schedule
        metadata.survivalProbabilities = known.survival_probabilities
        metadata.gateGranularity = known.gate_granularity
        metadata.testTimeRule = known.test_time_rule
        metadata.normalization = known.normalization
        metadata.classNames = known.class_names
        metadata.dataset = known.dataset
        metadata.inputSize = known.input_size
        let knownKeys = Set(CodingKeys.allCases.map(\.stringValue))
        for (key, value) in fields where !knownKeys.contains(key) {
            if let text = value as? String {
                metadata.extras[key] = text
            } else if let encoded = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) {
                metadata.extras[key] = String(decoding: encoded, as: UTF8.self)
            }
        }
        try metadata.validate(against: architecture)
        return metadata
    }

    /// Largest difference between a recorded p_l and the one the recorded schedule gives
    /// that still counts as agreement (exporters compute in float32 or float64).
    public static let scheduleTolerance = 1e-6

    /// Checks lengths and ranges against the architecture, and that `schedule` and
    /// `survival_probabilities` agree when both are recorded and the schedule is one the
    /// shared plugin registry knows (the built-in ones once registered).
    public func validate(against architecture: Architecture) throws {
        if let p = survivalProbabilities {
            guard p.count == architecture.blockCount else {
                throw MetadataError(field: "survival_probabilities",
                                    message: "has \(p.count) entries but the network has \(architecture.blockCount) blocks")
            }
            if let bad = p.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
                throw MetadataError(field: "survival_probabilities[\(bad)]", message: "\(p[bad]) is outside [0, 1]")
            }
            if let s = schedule, let implied = architecture.survivalProbabilities(schedule: s.name, params: s.params),
               implied.count == p.count,
               let bad = p.indices.first(where: { !(abs(p[$0] - implied[$0]) <= Self.scheduleTolerance) }) {
                let named = s.name + (s.params.isEmpty ? "" : " " + s.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
                throw MetadataError(field: "schedule", message: "\(named) gives p_\(bad + 1) = \(implied[bad]), but survival_probabilities[\(bad)] "
                                    + "records \(p[bad]); the schedule and the survival probabilities disagree, so the file is refused (correct or remove one of them)")
            }
        }
        if let n = normalization {
            for (name, values) in [("mean", n.mean), ("std", n.std)] where values.count != architecture.inChannels {
                throw MetadataError(field: "normalization.\(name)",
                                    message: "has \(values.count) entries but the network has \(architecture.inChannels) input channels")
            }
            if let bad = n.std.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
                throw MetadataError(field: "normalization.std[\(bad)]", message: "must be positive, found \(n.std[bad])")
            }
        }
        if let names = classNames, names.count != architecture.numClasses {
            throw MetadataError(field: "class_names", message: "has \(names.count) names but the network has \(architecture.numClasses) classes")
        }
        if let size = inputSize, size.count != 2 || size.contains(where: { $0 <= 0 }) {
            throw MetadataError(field: "input_size", message: "must be [height, width] with positive entries, found \(size)")
        }
    }
}

/// A problem in the training metadata, naming the JSON field.
public struct MetadataError: Error, CustomStringConvertible, Equatable {
    public var field: String
    public var message: String

    public var description: String {
        field.isEmpty ? "training metadata \(message)" : "training metadata field '\(field)': \(message)"
    }
}

