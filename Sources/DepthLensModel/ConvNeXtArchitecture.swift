import DepthLensPluginAPI
import Foundation

/// The `timm_convnext` family: timm's `ConvNeXt` (`timm.models.convnext`) with the patch
/// stem, as timm 1.0 builds it.
///
/// Stem: a `patch_size` x `patch_size` convolution with stride `patch_size` (`stem.0`),
/// then a layer norm over channels (`stem.1`). Four stages of `depths[i]` blocks of
/// `dims[i]` channels; a stage that downsamples (every stage after the first, and the
/// first when the patch is 2) begins with a layer norm and a 2x2 convolution with stride 2
/// (`stages.i.downsample.0`, `.1`). A block: 7x7 depthwise convolution (`conv_dw`), layer
/// norm (`norm`), `mlp.fc1` (to 4x the width), GELU, `mlp.fc2`, layer scale
/// (`gamma`, absent when `layer_scale` is false), drop path, identity shortcut. With
/// `conv_mlp` the norm is `LayerNorm2d` and the MLP's weights are 1x1 convolutions'
/// (out, in, 1, 1); the same function either way. Head: global average pooling, layer
/// norm (`head.norm`), linear (`head.fc`).
///
/// Stored flat in the architecture JSON (docs/checkpoint-format.md):
/// `{"family": "timm_convnext", "in_channels": 3, "num_classes": 1000, "patch_size": 4,
///   "depths": [3, 3, 9, 3], "dims": [96, 192, 384, 768], "conv_mlp": false, ...}`.
public struct ConvNeXtSettings: Codable, Equatable, Sendable {
    public var inChannels: Int
    public var numClasses: Int
    /// Side and stride of the stem's patch convolution (timm's `patch_size`).
    public var patchSize: Int
    /// Blocks per stage (four stages).
    public var depths: [Int]
    /// Channels per stage.
    public var dims: [Int]
    /// timm's `conv_mlp`: `LayerNorm2d` and 1x1-convolution MLP weights.
    public var convMLP: Bool
    /// Whether blocks carry layer scale `gamma` (timm's `ls_init_value` not None).
    public var layerScale: Bool
    /// Epsilon of every layer norm (timm's default 1e-6).
    public var normEps: Double
    /// Side of the depthwise convolution (timm's `kernel_sizes`, one for all stages).
    public var kernelSize: Int
    /// Whether the stem, downsampling and depthwise convolutions carry a bias (timm's
    /// `conv_bias`; the MLP's linear layers always do).
    public var convBias: Bool

    public init(inChannels: Int, numClasses: Int, patchSize: Int = 4, depths: [Int], dims: [Int], convMLP: Bool = false,
                layerScale: Bool = true, normEps: Double = 1e-6, kernelSize: Int = 7, convBias: Bool = true) {
        (self.inChannels, self.numClasses, self.patchSize, self.depths, self.dims) = (inChannels, numClasses, patchSize, depths, dims)
        (self.convMLP, self.layerScale, self.normEps) = (convMLP, layerScale, normEps)
        (self.kernelSize, self.convBias) = (kernelSize, convBias)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case inChannels = "in_channels", numClasses = "num_classes", patchSize = "patch_size", depths, dims
        case convMLP = "conv_mlp", layerScale = "layer_scale", normEps = "norm_eps"
        case kernelSize = "kernel_size", convBias = "conv_bias"
    }

    /// The JSON fields of the family, `family` included.
    static let fieldNames: Set<String> = Set(CodingKeys.allCases.map(\.stringValue) + ["family"])

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inChannels = try c.decode(Int.self, forKey: .inChannels)
        numClasses = try c.decode(Int.self, forKey: .numClasses)
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? 4
        depths = try c.decode([Int].self, forKey: .depths)
        dims = try c.decode([Int].self, forKey: .dims)
        convMLP = try c.decodeIfPresent(Bool.self, forKey: .convMLP) ?? false
        layerScale = try c.decodeIfPresent(Bool.self, forKey: .layerScale) ?? true
        normEps = try c.decodeIfPresent(Double.self, forKey: .normEps) ?? 1e-6
        kernelSize = try c.decodeIfPresent(Int.self, forKey: .kernelSize) ?? 7
        convBias = try c.decodeIfPresent(Bool.self, forKey: .convBias) ?? true
    }

    /// timm builds exactly four stages.
    public static let stageCount = 4

    /// The stride of each stage's downsampling, as timm computes it: 2 for every stage
    /// after the first, and for the first when the stem's stride is 2; else 1.
    public var stageStrides: [Int] {
        (0..<depths.count).map { i in i > 0 || patchSize == 2 ? 2 : 1 }
    }

    /// Hidden width of a block's MLP in stage `i`: four times the width (timm's
    /// `ConvNeXtBlock` default, which `ConvNeXt` does not change).
    public func hiddenWidth(_ stage: Int) -> Int { 4 * dims[stage] }

    /// Checks counts, widths and the settings timm would build differently.
    func validate(inChannels: Int, numClasses: Int) throws {
        func require(_ ok: Bool, _ field: String, _ message: String) throws {
            if !ok { throw ArchitectureError(field: field, message: message) }
        }
        let limit = 1 << 16
        try require((1...limit).contains(inChannels), "in_channels", "must be between 1 and \(limit), found \(inChannels)")
        try require((1...limit).contains(numClasses), "num_classes", "must be between 1 and \(limit), found \(numClasses)")
        try require(depths.count == Self.stageCount, "depths", "timm's ConvNeXt has \(Self.stageCount) stages, found \(depths.count)")
        try require(dims.count == Self.stageCount, "dims", "timm's ConvNeXt has \(Self.stageCount) stages, found \(dims.count)")
        for (i, d) in depths.enumerated() {
            try require((1...limit).contains(d), "depths[\(i)]", "must be between 1 and \(limit), found \(d)")
        }
        for (i, d) in dims.enumerated() {
            try require((1...limit).contains(d), "dims[\(i)]", "must be between 1 and \(limit), found \(d)")
        }
        // Patches of 8 or more reach timm's output stride of 32 before the last stage,
        // which timm then dilates instead of downsampling: not supported.
        try require((1...4).contains(patchSize), "patch_size",
                    "must be between 1 and 4, found \(patchSize) (larger patches make timm dilate the last stages, which DepthLens does not run)")
        try require(kernelSize >= 1 && kernelSize % 2 == 1 && kernelSize <= 31, "kernel_size", "must be an odd number up to 31, found \(kernelSize)")
        try require(normEps > 0 && normEps.isFinite, "norm_eps", "must be a positive number, found \(normEps)")
    }
}

extension Architecture {
    /// The architecture of a ConvNeXt: the ResNet-shaped fields (stages, stem width) are
    /// derived from `settings` so that block numbering, schedules and reports work alike.
    public init(convNeXt settings: ConvNeXtSettings) throws {
        let strides = settings.stageStrides
        let stages = zip(zip(settings.depths, settings.dims), strides).map {
            Stage(blocks: $0.0.0, width: $0.0.1, stride: $0.1)
        }
        self.init(family: Self.convNeXtFamily, block: .basic, inChannels: settings.inChannels, numClasses: settings.numClasses,
                  stemWidth: settings.dims.first ?? 1, stages: stages, shortcut: .projection, convBias: settings.convBias,
                  bnEps: settings.normEps)
        convNeXt = settings
    }

    /// Whether this is timm's ConvNeXt.
    public var isConvNeXt: Bool { family == Self.convNeXtFamily }
}

extension ConvNeXtSettings {
    /// The settings of `timm.models.convnext.ConvNeXt(**kwargs)`, as tools/train_timm.py
    /// records the constructor's arguments (`timm_kwargs`). Arguments that only matter in
    /// training (`drop_path_rate`, `drop_rate`, `head_init_scale`) are ignored; any
    /// other argument must be timm's default or one DepthLens runs.
    /// - Throws: ``ArchitectureError`` naming the argument that is unsupported or mistyped.
    public init(timmKwargs kwargs: [String: Any]) throws {
        func fail(_ key: String, _ message: String) -> ArchitectureError {
            ArchitectureError(field: "timm_kwargs.\(key)", message: message)
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let raw = kwargs[key] else {
                if let value { return value }
                throw fail(key, "missing argument")
            }
            guard let number = raw as? NSNumber, let v = number.exactInt else { throw fail(key, "expected an integer") }
            return v
        }
        func ints(_ key: String) throws -> [Int] {
            guard let list = kwargs[key] as? [Any] else { throw fail(key, "expected a list of integers") }
            return try list.map { item in
                guard let number = item as? NSNumber, let v = number.exactInt else { throw fail(key, "expected a list of integers") }
                return v
            }
        }
        func bool(_ key: String, default value: Bool) throws -> Bool {
            guard let raw = kwargs[key], !(raw is NSNull) else { return value }
            guard let b = raw as? Bool else { throw fail(key, "expected true or false") }
            return b
        }
        // Arguments whose only supported value is timm's default (or an equivalent).
        let fixed: [(String, [String], String)] = [
            ("global_pool", ["avg"], "global average pooling"), ("stem_type", ["patch"], "the patch stem"),
            ("act_layer", ["gelu"], "GELU"), ("norm_layer", ["layernorm", "layernorm2d"], "layer norm"),
        ]
        for (key, allowed, meaning) in fixed {
            if let raw = kwargs[key], !(raw is NSNull) {
                guard let text = raw as? String, allowed.contains(text) else {
                    throw fail(key, "unsupported value \(raw); DepthLens runs timm's ConvNeXt with \(meaning) only")
                }
            }
        }
        let flags: [(String, String)] = [("head_norm_first", "a head that normalises before pooling (norm_pre)"),
                                         ("use_grn", "global response normalisation (ConvNeXt-V2)")]
        for (key, what) in flags where try bool(key, default: false) {
            throw fail(key, "unsupported: \(what) is not a model DepthLens runs")
        }
        if let hidden = kwargs["head_hidden_size"], !(hidden is NSNull) {
            throw fail("head_hidden_size", "unsupported: a hidden layer in the head (head.pre_logits) is not a model DepthLens runs")
        }
        if try int("output_stride", default: 32) != 32 {
            throw fail("output_stride", "unsupported: only timm's default output stride 32 (no dilated stages)")
        }
        let known: Set<String> = ["in_chans", "num_classes", "depths", "dims", "patch_size", "conv_mlp", "ls_init_value",
                                  "norm_eps", "kernel_sizes", "conv_bias", "drop_path_rate", "drop_rate", "head_init_scale",
                                  "global_pool", "stem_type", "act_layer", "norm_layer", "head_norm_first", "use_grn",
                                  "head_hidden_size", "output_stride"]
        if let unknown = kwargs.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail(unknown, "unsupported timm ConvNeXt argument (DepthLens knows \(known.sorted().joined(separator: ", ")))")
        }
        var kernel = 7
        if let raw = kwargs["kernel_sizes"] {
            if raw is [Any] {
                let sizes = try ints("kernel_sizes")
                guard let first = sizes.first, sizes.allSatisfy({ $0 == first }) else {
                    throw fail("kernel_sizes", "unsupported: different kernel sizes per stage \(sizes)")
                }
                kernel = first
            } else {
                kernel = try int("kernel_sizes")
            }
        }
        var eps = 1e-6
        if let raw = kwargs["norm_eps"], !(raw is NSNull) {
            guard let number = raw as? NSNumber else { throw fail("norm_eps", "expected a number") }
            eps = number.doubleValue
        }
        self.init(inChannels: try int("in_chans", default: 3), numClasses: try int("num_classes", default: 1000),
                  patchSize: try int("patch_size", default: 4),
                  depths: kwargs["depths"] == nil ? [3, 3, 9, 3] : try ints("depths"),
                  dims: kwargs["dims"] == nil ? [96, 192, 384, 768] : try ints("dims"),
                  convMLP: try bool("conv_mlp", default: false),
                  layerScale: !(kwargs["ls_init_value"] is NSNull), normEps: eps, kernelSize: kernel,
                  convBias: try bool("conv_bias", default: true))
    }
}

extension NSNumber {
    /// The value as an integer, or nil when it has a fraction.
    fileprivate var exactInt: Int? {
        let d = doubleValue
        return d.rounded() == d && abs(d) < 1e15 ? Int(d) : nil
    }
}

extension ArchitecturePreset {
    /// timm's ConvNeXt presets (`timm.models.convnext`): blocks per stage and `conv_mlp`;
    /// the widths come from the tensors.
    static let convNeXtPresets: [ArchitecturePreset] = [
        ("convnext_atto", [2, 2, 6, 2], true), ("convnext_femto", [2, 2, 6, 2], true), ("convnext_pico", [2, 2, 6, 2], true),
        ("convnext_nano", [2, 2, 8, 2], true), ("convnext_tiny", [3, 3, 9, 3], false),
    ].map { ArchitecturePreset(name: "timm/\($0.0)", block: .basic, depths: $0.1, family: Architecture.convNeXtFamily, convMLP: $0.2) }

    /// A ConvNeXt dump's architecture: input channels, patch size and first width from
    /// `stem.0.weight`, each stage's width and the depthwise kernel from its first block's
    /// `conv_dw.weight`, classes from `head.fc.weight`, layer scale from whether `gamma`
    /// is present, convolution biases from whether `stem.0.bias` is; blocks per stage and
    /// `conv_mlp` from the preset. Heads timm builds differently are refused by name.
    func convNeXtArchitecture(shape: (String) throws -> [Int]?) throws -> Architecture {
        func read(_ key: String, rank: Int, _ why: String) throws -> [Int] {
            guard let found = try shape(key) else { throw PresetError(key: key, message: "missing tensor; \(name) \(why)") }
            guard found.count == rank, found.allSatisfy({ $0 > 0 }) else {
                throw PresetError(key: key, message: "shape \(found) in the file, but \(name) needs a \(rank)-D tensor here")
            }
            return found
        }
        for (key, what) in [("head.pre_logits.fc.weight", "a hidden layer in the head (timm's head_hidden_size)"),
                            ("norm_pre.weight", "a norm before pooling (timm's head_norm_first)"),
                            ("stages.0.blocks.0.mlp.grn.weight", "global response normalisation (ConvNeXt-V2)")]
        where try shape(key) != nil {
            throw PresetError(key: key, message: "unsupported: \(what); DepthLens runs timm's ConvNeXt with the plain norm-and-linear head")
        }
        let stem = try read("stem.0.weight", rank: 4, "reads the input channels, patch size and first width from it")
        guard stem[2] == stem[3] else {
            throw PresetError(key: "stem.0.weight", message: "shape \(stem) in the file, but \(name)'s patch stem is square")
        }
        let classes = try read("head.fc.weight", rank: 2, "reads the number of classes from it")
        var dims: [Int] = [], kernel = 7
        for s in depths.indices {
            let dw = try read("stages.\(s).blocks.0.conv_dw.weight", rank: 4, "reads the width of stage \(s + 1) from it")
            dims.append(dw[0])
            kernel = dw[2]
        }
        let fc1 = "stages.0.blocks.0.mlp.fc1.weight"
        let rank = convMLP ? 4 : 2
        _ = try read(fc1, rank: rank, convMLP ? "has 1x1-convolution MLP weights (conv_mlp)" : "has linear MLP weights")
        let settings = ConvNeXtSettings(inChannels: stem[1], numClasses: classes[0], patchSize: stem[2], depths: depths, dims: dims,
                                        convMLP: convMLP, layerScale: try shape("stages.0.blocks.0.gamma") != nil,
                                        kernelSize: kernel, convBias: try shape("stem.0.bias") != nil)
        return try Architecture(convNeXt: settings)
    }
}
