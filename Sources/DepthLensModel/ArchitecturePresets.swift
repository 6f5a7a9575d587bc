import DepthLensPluginAPI

/// A named ImageNet-style ResNet as timm or torchvision builds it (`timm/resnet50`,
/// `torchvision/resnet18`, ...), for loading a plain `state_dict` dump that carries no
/// architecture of its own.
///
/// The preset fixes the topology: block kind, blocks per stage, strides, the stem (7x7,
/// or timm's deep stem with average-pool downsampling for the `d` variants). The sizes
/// are read from the dump: input channels and stem width from `conv1.weight` (`conv1.0.weight`),
/// each stage's width from its first block's `conv1.weight`, classes from `fc.weight`.
/// Every other tensor is then verified against the architecture those imply.
public struct ArchitecturePreset: Sendable, Equatable {
    /// `library/model`, such as `timm/resnet18`.
    public var name: String
    public var block: Architecture.BlockKind
    /// Blocks per stage.
    public var depths: [Int]
    /// timm's `resnet*d`: deep stem and `avg_down` projections.
    public var deep: Bool = false
    /// A vision transformer (`timm_vit`): heads and pooling; nil for the ResNets.
    public var vit: VisionTransformerPreset? = nil
    /// The family the preset builds: `imagenet_resnet`, or `timm_convnext`
    /// (ConvNeXtArchitecture.swift), whose `block` is unused.
    public var family: String = Architecture.imageNetFamily
    /// `timm_convnext` only: timm's `conv_mlp` (the small presets, atto to nano).
    public var convMLP: Bool = false

    /// Every preset, in the order `--arch` help lists them. timm and torchvision name
    /// these networks' tensors identically; both prefixes are accepted so that a command
    /// line says where the weights came from.
    public static let all: [ArchitecturePreset] = {
        let timm: [(String, Architecture.BlockKind, [Int])] = [
            ("resnet18", .basic, [2, 2, 2, 2]),
            ("resnet26", .bottleneck, [2, 2, 2, 2]), ("resnet34", .basic, [3, 4, 6, 3]),
            ("resnet50", .bottleneck, [3, 4, 6, 3]), ("resnet101", .bottleneck, [3, 4, 23, 3]),
            ("resnet152", .bottleneck, [3, 8, 36, 3]),
        ]
        let torchvision = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
        return timm.map { ArchitecturePreset(name: "timm/\($0.0)", block: $0.1, depths: $0.2) }
            + timm.map { ArchitecturePreset(name: "timm/\($0.0)d", block: $0.1, depths: $0.2, deep: true) }
            + timm.filter { torchvision.contains($0.0) }.map { ArchitecturePreset(name: "torchvision/\($0.0)", block: $0.1, depths: $0.2) }
            + convNeXtPresets
            + VisionTransformerPreset.named.map { ArchitecturePreset(name: $0.0, block: .basic, depths: [], vit: $0.1, family: Architecture.vitFamily) }
    }()

    /// The preset called `name`.
    /// - Throws: ``ArchitectureError`` listing the known names.
    public static func named(_ name: String) throws -> ArchitecturePreset {
        guard let preset = all.first(where: { $0.name == name }) else {
            throw ArchitectureError(field: "preset", message: "unknown architecture '\(name)' (known: \(all.map(\.name).joined(separator: ", ")))")
        }
        return preset
    }

    /// The architecture of a dump whose tensor shapes `shape(key)` returns (nil when the
    /// dump has no such tensor).
    /// - Throws: ``PresetError`` naming the tensor that is missing or of the wrong rank.
    public func architecture(shape: (String) throws -> [Int]?) throws -> Architecture {
        if let vit { return try vit.architecture(name: name, shape: shape) }
        if family == Architecture.convNeXtFamily { return try convNeXtArchitecture(shape: shape) }
        func read(_ key: String, rank: Int, _ why: String) throws -> [Int] {
            guard let found = try shape(key) else {
                let deepStem = key == "conv1.weight" ? try shape("conv1.0.weight") != nil : false
                let hint = deepStem ? " (the file has conv1.0.weight: a deep stem, such as \(name)d)" : ""
                throw PresetError(key: key, message: "missing tensor; \(name) \(why)\(hint)")
            }
            guard found.count == rank, found.allSatisfy({ $0 > 0 }) else {
                throw PresetError(key: key, message: "shape \(found) in the file, but \(name) needs a \(rank)-D tensor here")
            }
            return found
        }
        let stemKey = deep ? "conv1.0.weight" : "conv1.weight", side = deep ? 3 : 7
        let stem = try read(stemKey, rank: 4, "reads the input channels and stem width from it")
        guard stem[2] == side, stem[3] == side else {
            throw PresetError(key: stemKey, message: "shape \(stem) in the file, but \(name) has a \(side)x\(side) stem convolution [\(stem[0]), \(stem[1]), \(side), \(side)]")
        }
        let classes = try read("fc.weight", rank: 2, "reads the number of classes from it")
        let stages = try depths.enumerated().map { s, blocks in
            let first = try read("layer\(s + 1).0.conv1.weight", rank: 4, "reads the width of stage \(s + 1) from it")
            return Architecture.Stage(blocks: blocks, width: first[0], stride: s == 0 ? 1 : 2)
        }
        return Architecture(family: Architecture.imageNetFamily, block: block, inChannels: stem[1], numClasses: classes[0],
                            stemWidth: stem[0], stages: stages, shortcut: .projection, convBias: false, bnEps: 1e-5,
                            stem: deep ? .deep : nil, downsample: deep ? .avg : nil)
    }
}

/// A plain dump does not fit a preset: the tensor `key` is missing or of the wrong rank.
public struct PresetError: Error, CustomStringConvertible, Equatable {
    public var key: String
    public var message: String

    public var description: String { "\(key): \(message)" }
}
