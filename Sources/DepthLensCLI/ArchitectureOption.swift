import ArgumentParser
import DepthLens

/// `--arch`: open a plain `state_dict` dump as a named timm or torchvision network
/// instead of a DepthLens checkpoint. Every command that opens a checkpoint has it.
struct ArchitectureOption: ParsableArguments {
    @Option(name: .customLong("arch"),
            help: ArgumentHelp("Read the file as a plain state_dict dump (one HDF5 dataset per key, as h5py writes a dict) of this network: \(ArchitecturePreset.all.map(\.name).joined(separator: ", ")).",
                               valueName: "library/model"))
    var arch: String?

    func validate() throws {
        if let arch, !ArchitecturePreset.all.contains(where: { $0.name == arch }) {
            throw ValidationError("--arch: unknown architecture '\(arch)'; known: \(ArchitecturePreset.all.map(\.name).joined(separator: ", ")).")
        }
    }

    /// The checkpoint at `path`: a DepthLens checkpoint, or a dump read as `--arch` says.
    func load(_ path: String) throws -> Checkpoint {
        guard let arch else { return try Checkpoint.load(from: path) }
        return try Checkpoint.load(from: path, preset: try ArchitecturePreset.named(arch))
    }
}
