import DepthLensModel
import Foundation

/// A trained network as stored in a DepthLens checkpoint (format v1): its architecture,
/// its named tensors, and what is known of how it was trained.
///
/// See docs/checkpoint-format.md for the layout.
public struct Checkpoint: Sendable {
    /// The value of the root attribute `format`.
    public static let formatName = "depthlens.checkpoint"
    /// The format version this build reads and writes.
    public static let formatVersion = 1

    /// Where the checkpoint was loaded from.
    public var path: String
    public var architecture: Architecture
    public var training: TrainingMetadata?
    /// The exporter's provenance record (tool, versions, date), as parsed JSON text fields.
    public var provenance: [String: String]
    /// Every tensor by `state_dict` key.
    public var tensors: [String: Tensor]

    public init(path: String, architecture: Architecture, training: TrainingMetadata?,
                provenance: [String: String] = [:], tensors: [String: Tensor]) {
        self.path = path
        self.architecture = architecture
        self.training = training
        self.provenance = provenance
        self.tensors = tensors
    }

    /// Loads and verifies a checkpoint.
    ///
    /// Verification: the format marker and version; the architecture and training JSON;
    /// every tensor the architecture implies is present, float, of the implied shape and
    /// finite; no tensor is left unused (except `num_batches_tracked` counters).
    /// - Throws: ``CheckpointError`` (naming the file and the key or attribute), or
    ///   ``HDF5Error`` when the file cannot be read as HDF5. A `.safetensors` file loads
    ///   when its metadata records the architecture (`depthlens_architecture`, see
    ///   RecordedArchitecture.swift); otherwise ``CheckpointError`` at `preset` (or at the
    ///   problem, if its header is malformed).
    public static func load(from path: String) throws -> Checkpoint {
        // Before any byte is read: a named pipe would block the read forever.
        if let problem = RegularFile.problem(path), problem != "is a folder" {
            throw CheckpointError(file: path, location: "", message: "\(problem), not a checkpoint file")
        }
        if SafetensorsFile.isSafetensors(path: path) {
            let file = try SafetensorsFile.open(path)
            if let json = file.metadata[RecordedArchitecture.architectureKey] {
                return try loadRecorded(file, architectureJSON: json)
            }
            throw CheckpointError(file: path, location: "preset",
                                  message: "a safetensors file records no DepthLens architecture (\(file.names.count) tensors, "
                                  + "no \(RecordedArchitecture.architectureKey) metadata); "
                                  + "read it with an architecture preset, such as timm/resnet18 or timm/convnext_atto")
        }
        let file = try HDF5File.open(path)
        let root = try file.root
        func fail(_ place: String, _ message: String) -> CheckpointError {
            CheckpointError(file: path, location: place, message: message)
        }
        func stringAttribute(_ name: String, required: Bool) throws -> String? {
            guard root.hasAttribute(name) else {
                if required { throw fail("@\(name)", "missing attribute; is this a DepthLens checkpoint? (see docs/checkpoint-format.md)") }
                return nil
            }
            guard let text = try root.attribute(name).string else { throw fail("@\(name)", "must be a string") }
            return text
        }

        if let format = try stringAttribute("format", required: false), format != formatName {
            throw fail("@format", "is '\(format)', expected '\(formatName)'")
        }
        if root.hasAttribute("format_version") {
            guard let version = try root.attribute("format_version").integer else {
                throw fail("@format_version", "must be an integer")
            }
            guard version == formatVersion else {
                throw fail("@format_version", "is \(version); this DepthLens reads version \(formatVersion)")
            }
        } else {
            throw fail("@format_version", "missing attribute; is this a DepthLens checkpoint? (see docs/checkpoint-format.md; "
                       + "a plain state_dict dump is read with an architecture preset, such as timm/resnet18)")
        }
        let architecture: Architecture
        do {
            architecture = try Architecture.parse(json: try stringAttribute("architecture", required: true)!)
        } catch let error as ArchitectureError {
            throw fail("@architecture", error.description)
        }
        var training: TrainingMetadata?
        if let json = try stringAttribute("training", required: false) {
            do {
                training = try TrainingMetadata.parse(json: json, architecture: architecture)
            } catch let error as MetadataError {
                throw fail("@training", error.description)
            }
        }
        var provenance: [String: String] = [:]
        if let json = try stringAttribute("provenance", required: false) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
                throw fail("@provenance", "is not a JSON object")
            }
            for (key, value) in object { provenance[key] = "\(value)" }
        }
        guard root.contains("tensors"), try root.kind(of: "tensors") == .group else {
            throw fail("/tensors", "missing group holding the tensors")
        }
        let tensors = try loadTensors(from: try root.group("tensors"), architecture: architecture, fail: fail)
        return Checkpoint(path: path, architecture: architecture, training: training,
                          provenance: provenance, tensors: tensors)
    }

    /// Loads a plain dump of a `state_dict` as the network `preset` names: an HDF5 file with
    /// one dataset per key at the root (as h5py writes a dict of arrays), or a
    /// `.safetensors` file (F32, F16, BF16 or F64 tensors, read as float32), told apart by
    /// their first bytes (``SafetensorsFile/isSafetensors(path:)``).
    ///
    /// The sizes come from the dump (``ArchitecturePreset/architecture(shape:)``); then
    /// every tensor is verified as for a checkpoint: none missing, none unused (except
    /// `num_batches_tracked` counters), each of the implied shape and finite. The result
    /// records no training metadata.
    /// - Throws: ``CheckpointError`` naming the file and the key (or a safetensors file's
    ///   `header`), or ``HDF5Error``.
    public static func load(from path: String, preset: ArchitecturePreset) throws -> Checkpoint {
        // Before any byte is read: a named pipe would block the read forever.
        if let problem = RegularFile.problem(path), problem != "is a folder" {
            throw CheckpointError(file: path, location: "", message: "\(problem), not a checkpoint file")
        }
        func fail(_ place: String, _ message: String) -> CheckpointError {
            CheckpointError(file: path, location: place, message: message)
        }
        if SafetensorsFile.isSafetensors(path: path) {
            let file = try SafetensorsFile.open(path)
            let architecture = try architecture(of: preset, fail: fail) { file.entries[$0]?.shape }
            let tensors = try loadTensors(names: file.names, architecture: architecture, fail: fail) { key in
                let entry = file.entries[key]!
                guard entry.dtype.isReadableAsFloat else {
                    throw fail(key, "has \(entry.dtype) elements; tensors must be F32, F16, BF16 or F64")
                }
                return (entry.shape, { try file.readFloats(key) })
            }
            return Checkpoint(path: path, architecture: architecture, training: nil,
                              provenance: ["source": "safetensors state_dict", "arch": preset.name], tensors: tensors)
        }
        let file = try HDF5File.open(path)
        let root = try file.root
        if root.hasAttribute("format_version") || root.contains("tensors") {
            throw fail("preset \(preset.name)", "this is a DepthLens checkpoint, which records its own architecture; read it without a preset")
        }
        let architecture = try architecture(of: preset, fail: fail) { key in
            guard root.contains(key), try root.kind(of: key) == .dataset else { return nil }
            return try root.dataset(key).shape
        }
        let tensors = try loadTensors(from: root, architecture: architecture, fail: fail)
        return Checkpoint(path: path, architecture: architecture, training: nil,
                          provenance: ["source": "plain state_dict dump", "arch": preset.name], tensors: tensors)
    }

    /// The architecture `preset` implies for a dump whose tensor shapes `shape(key)` gives.
    static func architecture(of preset: ArchitecturePreset, fail: (String, String) -> CheckpointError,
                             shape: (String) throws -> [Int]?) throws -> Architecture {
        do {
            let architecture = try preset.architecture(shape: shape)
            try architecture.validate()
            return architecture
        } catch let error as PresetError {
            throw fail(error.key, error.message)
        } catch let error as ArchitectureError {
            throw fail("preset \(preset.name)", error.description)
        }
    }

    /// Reads the tensors the architecture implies from the HDF5 `group`, verifying each.
    static func loadTensors(from group: HDF5Group, architecture: Architecture,
                            fail: (String, String) -> CheckpointError) throws -> [String: Tensor] {
        try loadTensors(names: try group.memberNames(), architecture: architecture, fail: fail) { key in
            guard try group.kind(of: key) == .dataset else { throw fail(key, "is a group, expected a tensor") }
            let dataset = try group.dataset(key)
            switch dataset.elementType {
            case .float(bits: 32), .float(bits: 64): break
            default: throw fail(key, "has \(dataset.elementType) elements; tensors must be float32")
            }
            return (dataset.shape, dataset.readFloats)
        }
    }

    /// The verification every format shares: of the tensors a file holds (`names`), none the
    /// architecture implies is missing and none is unused (except `num_batches_tracked`
    /// counters); `stored(key)` checks the element type the format's way and gives the
    /// stored shape and a reader; the shape must be the implied one, every value finite, and
    /// a running variance non-negative.
    static func loadTensors(names: [String], architecture: Architecture, fail: (String, String) -> CheckpointError,
                            stored: (String) throws -> (shape: [Int], read: () throws -> [Float])) throws -> [String: Tensor] {
        let expected = architecture.expectedTensors
        let present = Set(names)
        let expectedKeys = Set(expected.map(\.key))
        let unused = present.subtracting(expectedKeys).filter { !isIgnorableTensorKey($0) }.sorted()
        let missing = expected.map(\.key).filter { !present.contains($0) }
        if let key = missing.first {
            let more = missing.count > 1 ? " (and \(missing.count - 1) more: \(missing.dropFirst().prefix(4).joined(separator: ", "))\(missing.count > 5 ? ", ..." : ""))" : ""
            throw fail(key, "missing tensor\(more); the architecture implies \(expected.count) tensors")
        }
        if let key = unused.first {
            let more = unused.count > 1 ? " (and \(unused.count - 1) more)" : ""
            throw fail(key, "unused tensor: the architecture has no parameter of this name\(more)")
        }
        var tensors: [String: Tensor] = [:]
        for (key, shape) in expected {
            let tensor = try stored(key)
            guard tensor.shape == shape else {
                throw fail(key, "shape \(tensor.shape) in the file, but the architecture implies \(shape)")
            }
            let values = try tensor.read()
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw fail(key, "element \(bad) is \(values[bad]); weights must be finite")
            }
            if key.hasSuffix("running_var"), let bad = values.firstIndex(where: { $0 < 0 }) {
                throw fail(key, "element \(bad) is \(values[bad]); a running variance cannot be negative")
            }
            tensors[key] = Tensor(shape: shape, scalars: values)
        }
        return tensors
    }

    /// Number of residual blocks L.
    public var blockCount: Int { architecture.blockCount }
}

/// A problem with a checkpoint's content, naming the file and the key or attribute.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public var file: String
    /// A tensor key such as `layer1.0.conv1.weight`, an attribute such as `@architecture`,
    /// `header` (of a safetensors file), or empty for the file itself.
    public var location: String
    public var message: String

    public var description: String { location.isEmpty ? "\(file): \(message)" : "\(file): \(location): \(message)" }
}
