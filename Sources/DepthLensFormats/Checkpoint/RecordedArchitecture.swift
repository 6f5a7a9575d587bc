import DepthLensModel
import Foundation

/// The architecture and training record a `.safetensors` file carries in its header's
/// `__metadata__`: `depthlens_architecture` and `depthlens_training`, JSON text. Two
/// writers are understood:
///
/// - checkpoint format v1's JSON (docs/checkpoint-format.md), the architecture and
///   training attributes of an HDF5 checkpoint;
/// - tools/train_timm.py's export: the architecture as the timm class and its
///   constructor arguments (`timm_class`, `timm_kwargs`), and a training record whose
///   drop path is described under `drop_path` (`rate`, `schedule`, `per_block_rates`,
///   `gate_granularity`), translated here into format v1's `schedule`,
///   `survival_probabilities` (1 - rate per block) and `gate_granularity`.
enum RecordedArchitecture {
    static let architectureKey = "depthlens_architecture"
    static let trainingKey = "depthlens_training"

    /// The timm classes whose constructor arguments DepthLens turns into an architecture.
    static let convNeXtClass = "timm.models.convnext.ConvNeXt"

    /// The architecture recorded as `json`.
    /// - Throws: ``ArchitectureError`` naming the field.
    static func architecture(json: String) throws -> Architecture {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw ArchitectureError(field: "", message: jsonProblem(json))
        }
        guard let timmClass = object["timm_class"] else { return try Architecture.parse(json: json) }
        let vision = Architecture.timmVisionTransformerClass
        guard let name = timmClass as? String, name == convNeXtClass || name == vision else {
            throw ArchitectureError(field: "timm_class", message: "unsupported timm class \(timmClass) (DepthLens reads \(convNeXtClass), \(vision))")
        }
        guard let kwargs = object["timm_kwargs"] as? [String: Any] else {
            throw ArchitectureError(field: "timm_kwargs", message: "missing or not an object: the constructor arguments of \(name)")
        }
        if name == vision { return try Architecture.fromTimm(className: name, kwargs: kwargs) }
        let architecture = try Architecture(convNeXt: try ConvNeXtSettings(timmKwargs: kwargs))
        try architecture.validate()
        return architecture
    }

    /// Format v1's training JSON for a recorded training record: unchanged, or with
    /// tools/train_timm.py's `drop_path` record translated (fields already present win).
    static func trainingJSON(_ json: String) -> String {
        guard var object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let dropPath = object["drop_path"] as? [String: Any] else { return json }
        if object["schedule"] == nil, let name = dropPath["schedule"] as? String, let rate = dropPath["rate"] as? Double {
            object["schedule"] = ["name": name, "params": ["r": rate]]
        }
        if object["survival_probabilities"] == nil, let rates = dropPath["per_block_rates"] as? [Double] {
            object["survival_probabilities"] = rates.map { 1 - $0 }
        }
        if object["gate_granularity"] == nil, let granularity = dropPath["gate_granularity"] {
            object["gate_granularity"] = granularity
        }
        if object["test_time_rule"] == nil, let rule = dropPath["test_time_rule"] {
            object["test_time_rule"] = rule
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return json }
        return String(decoding: data, as: UTF8.self)
    }
}

extension Checkpoint {
    /// Loads a `.safetensors` file that records its architecture in its metadata
    /// (``RecordedArchitecture``), verifying every tensor as for an HDF5 checkpoint.
    static func loadRecorded(_ file: SafetensorsFile, architectureJSON: String) throws -> Checkpoint {
        let path = file.path
        func fail(_ place: String, _ message: String) -> CheckpointError {
            CheckpointError(file: path, location: place, message: message)
        }
        let architecture: Architecture
        do {
            architecture = try RecordedArchitecture.architecture(json: architectureJSON)
        } catch let error as ArchitectureError {
            throw fail("metadata \(RecordedArchitecture.architectureKey)", error.description)
        }
        var training: TrainingMetadata?
        if let json = file.metadata[RecordedArchitecture.trainingKey] {
            do {
                training = try TrainingMetadata.parse(json: RecordedArchitecture.trainingJSON(json), architecture: architecture)
            } catch let error as MetadataError {
                throw fail("metadata \(RecordedArchitecture.trainingKey)", error.description)
            }
        }
        var provenance = ["source": "safetensors with recorded architecture"]
        if let json = file.metadata["depthlens_provenance"],
           let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] {
            for (key, value) in object { provenance[key] = "\(value)" }
        }
        let tensors = try loadTensors(names: file.names, architecture: architecture, fail: fail) { key in
            let entry = file.entries[key]!
            guard entry.dtype.isReadableAsFloat else {
                throw fail(key, "has \(entry.dtype) elements; tensors must be F32, F16, BF16 or F64")
            }
            return (entry.shape, { try file.readFloats(key) })
        }
        return Checkpoint(path: path, architecture: architecture, training: training, provenance: provenance, tensors: tensors)
    }
}
