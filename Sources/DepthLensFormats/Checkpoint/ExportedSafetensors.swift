import DepthLensModel
import Foundation

/// A `.safetensors` file that records its own network, as tools/train_timm.py exports
/// the bundled timm models: metadata `depthlens_architecture` (timm's class and keyword
/// arguments) and `depthlens_training` (the training record, with timm's drop path under
/// `drop_path`). Such a file loads without `--arch`.
extension Checkpoint {
    /// The metadata key of the recorded architecture.
    public static let safetensorsArchitectureKey = "depthlens_architecture"
    /// The metadata key of the recorded training.
    public static let safetensorsTrainingKey = "depthlens_training"

    /// Loads and verifies a safetensors file that records its architecture.
    static func loadExported(_ file: SafetensorsFile, path: String) throws -> Checkpoint {
        func fail(_ place: String, _ message: String) -> CheckpointError {
            CheckpointError(file: path, location: place, message: message)
        }
        let architectureKey = "__metadata__.\(safetensorsArchitectureKey)"
        let text = file.metadata[safetensorsArchitectureKey] ?? ""
        guard let fields = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw fail(architectureKey, jsonProblem(text))
        }
        let architecture: Architecture
        do {
            if let className = fields["timm_class"] {
                guard let className = className as? String, let kwargs = fields["timm_kwargs"] as? [String: Any] else {
                    throw ArchitectureError(field: "timm_class", message: "needs a class name and a timm_kwargs object")
                }
                architecture = try Architecture.fromTimm(className: className, kwargs: kwargs)
            } else {
                architecture = try Architecture.parse(json: text)  // a format v1 architecture
            }
        } catch let error as ArchitectureError {
            throw fail(architectureKey, error.description)
        }
        var training: TrainingMetadata?
        if let json = file.metadata[safetensorsTrainingKey] {
            do {
                training = try TrainingMetadata.parse(json: json, architecture: architecture)
                try training?.readTimmDropPath(architecture: architecture)
            } catch let error as MetadataError {
                throw fail("__metadata__.\(safetensorsTrainingKey)", error.description)
            }
        }
        let tensors = try loadTensors(names: file.names, architecture: architecture, fail: fail) { key in
            let entry = file.entries[key]!
            guard entry.dtype.isReadableAsFloat else {
                throw fail(key, "has \(entry.dtype) elements; tensors must be F32, F16, BF16 or F64")
            }
            return (entry.shape, { try file.readFloats(key) })
        }
        return Checkpoint(path: path, architecture: architecture, training: training,
                          provenance: ["source": "safetensors with DepthLens metadata"], tensors: tensors)
    }
}

extension TrainingMetadata {
    /// tools/train_timm.py records timm's drop path as `drop_path` {rate, schedule,
    /// per_block_rates, gate_granularity, test_time_rule}: the survival probability of
    /// block l is 1 - its rate (both branches of a transformer block share it), the
    /// schedule is `linear-from-zero` with r = rate. Fills what the record leaves out.
    mutating func readTimmDropPath(architecture: Architecture) throws {
        guard let text = extras["drop_path"],
              let record = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else { return }
        if survivalProbabilities == nil, let rates = record["per_block_rates"] as? [NSNumber] {
            survivalProbabilities = rates.map { 1 - $0.doubleValue }
        }
        if schedule == nil, record["schedule"] as? String == "linear-from-zero", let rate = (record["rate"] as? NSNumber)?.doubleValue {
            schedule = Schedule(name: "linear-from-zero", params: ["r": rate])
        }
        if gateGranularity == nil, let g = record["gate_granularity"] as? String {
            gateGranularity = GateGranularity(rawValue: g)
        }
        if testTimeRule == nil, let r = record["test_time_rule"] as? String {
            testTimeRule = TestTimeRule(rawValue: r)
        }
        do {
            try validate(against: architecture)
        } catch let error as MetadataError {
            throw MetadataError(field: "drop_path (\(error.field))", message: error.message)
        }
    }
}
