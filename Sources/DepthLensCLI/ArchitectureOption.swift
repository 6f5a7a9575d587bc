import ArgumentParser
import DepthLens

/// `--arch`: open a plain `state_dict` dump as a named timm or torchvision network
/// instead of a DepthLens checkpoint. Every command that opens a checkpoint has it.
struct ArchitectureOption: ParsableArguments {
    @Option(name: .customLong("arch"),
            help: ArgumentHelp("Read the file as a plain state_dict dump (a .safetensors file, or one HDF5 dataset per key, as h5py writes a dict) of this network: \(ArchitecturePreset.all.map(\.name).joined(separator: ", ")).",
                               valueName: "library/model"))
    var arch: String?

    func validate() throws {
        if let arch, !ArchitecturePreset.all.contains(where: { $0.name == arch }) {
            throw ValidationError("--arch: unknown architecture '\(arch)'; known: \(ArchitecturePreset.all.map(\.name).joined(separator: ", ")).")
        }
    }

    /// The checkpoint at `path`: a DepthLens checkpoint, or a dump read as `--arch` says.
    /// The library's errors name the preset; these name the flag.
    func load(_ path: String) throws -> Checkpoint {
        guard let arch else {
            do {
                return try Checkpoint.load(from: path)
            } catch let error as CheckpointError where error.location == "@format_version" && error.message.hasPrefix("missing attribute") {
                throw CLIError("\(error.file): @format_version: missing attribute; is this a DepthLens checkpoint? (see docs/checkpoint-format.md; "
                               + "for a plain state_dict dump, name its architecture, such as --arch timm/resnet18)")
            } catch let error as CheckpointError where error.location == "preset" {
                throw CLIError("\(error.file): a safetensors file records no DepthLens architecture; name it with --arch, such as --arch timm/resnet18")
            }
        }
        do {
            return try Checkpoint.load(from: path, preset: try ArchitecturePreset.named(arch))
        } catch let error as CheckpointError where error.location == "preset \(arch)" {
            if error.message.hasPrefix("this is a DepthLens checkpoint") {
                throw CLIError("\(error.file): --arch: this is a DepthLens checkpoint, which records its own architecture; leave out --arch \(arch)")
            }
            throw CLIError("\(error.file): --arch \(arch): \(error.message)")
        }
    }
}
