import DepthLensPluginAPI
import Foundation

/// The `timm_vit` family: timm's `VisionTransformer` (ViT, DeiT) as
/// `timm.models.vision_transformer` builds it with its defaults (layer norm with eps 1e-6,
/// GELU, learned position embedding that covers the class token, no register tokens, no
/// pre-norm, a final norm).
///
/// Stem: the patch embedding `patch_embed.proj` (a p x p convolution with stride p and a
/// bias) read as tokens, the class token `cls_token` prepended (when `class_token`),
/// `pos_embed` added. Block i (`blocks.{i}`) is two residual units, each gated on its own
/// (timm draws their drop-path masks independently, at the block's rate):
/// `x + ls1(attn(norm1(x)))` and then `x + ls2(fc2(gelu(fc1(norm2(x)))))`, `ls` the layer
/// scale `gamma` when `layer_scale`. Head: the final `norm`, then the class token (`token`
/// pooling) or the mean of the patch tokens (`avg`), `head`; with `fc_norm` the final norm
/// comes after pooling instead, as `fc_norm` (timm's default for `avg`).
public struct VisionTransformerSpec: Codable, Equatable, Sendable {
    /// What the head reads.
    public enum Pooling: String, Codable, CaseIterable, Sendable {
        /// The class token (`global_pool='token'`).
        case token
        /// The mean of the patch tokens, the class token left out (`global_pool='avg'`).
        case avg
    }

    /// Height and width of the images the network was built for (timm's `img_size`).
    public var imageSize: [Int]
    public var patchSize: Int
    /// Channels of every token (timm's `embed_dim`).
    public var embedDim: Int
    /// Number of blocks.
    public var depth: Int
    public var numHeads: Int
    /// Hidden width of the MLP (`embed_dim * mlp_ratio`).
    public var mlpHidden: Int
    public var qkvBias: Bool
    public var classToken: Bool
    public var globalPool: Pooling
    /// Whether the final norm comes after pooling (`fc_norm`) instead of before it (`norm`).
    public var fcNorm: Bool
    /// Whether every branch ends in a layer scale (`ls1.gamma`, `ls2.gamma`; timm's `init_values`).
    public var layerScale: Bool
    /// Layer-norm epsilon.
    public var normEps: Double

    public init(imageSize: [Int], patchSize: Int, embedDim: Int, depth: Int, numHeads: Int, mlpHidden: Int,
                qkvBias: Bool = true, classToken: Bool = true, globalPool: Pooling = .token, fcNorm: Bool? = nil,
                layerScale: Bool = false, normEps: Double = 1e-6) {
        (self.imageSize, self.patchSize, self.embedDim, self.depth) = (imageSize, patchSize, embedDim, depth)
        (self.numHeads, self.mlpHidden, self.qkvBias, self.classToken) = (numHeads, mlpHidden, qkvBias, classToken)
        (self.globalPool, self.layerScale, self.normEps) = (globalPool, layerScale, normEps)
        self.fcNorm = fcNorm ?? (globalPool == .avg)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case imageSize = "image_size", patchSize = "patch_size", embedDim = "embed_dim", depth
        case numHeads = "num_heads", mlpHidden = "mlp_hidden", qkvBias = "qkv_bias", classToken = "class_token"
        case globalPool = "global_pool", fcNorm = "fc_norm", layerScale = "layer_scale", normEps = "norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let pool = try c.decodeIfPresent(Pooling.self, forKey: .globalPool) ?? .token
        self.init(imageSize: try c.decode([Int].self, forKey: .imageSize), patchSize: try c.decode(Int.self, forKey: .patchSize),
                  embedDim: try c.decode(Int.self, forKey: .embedDim), depth: try c.decode(Int.self, forKey: .depth),
                  numHeads: try c.decode(Int.self, forKey: .numHeads), mlpHidden: try c.decode(Int.self, forKey: .mlpHidden),
                  qkvBias: try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? true,
                  classToken: try c.decodeIfPresent(Bool.self, forKey: .classToken) ?? true, globalPool: pool,
                  fcNorm: try c.decodeIfPresent(Bool.self, forKey: .fcNorm),
                  layerScale: try c.decodeIfPresent(Bool.self, forKey: .layerScale) ?? false,
                  normEps: try c.decodeIfPresent(Double.self, forKey: .normEps) ?? 1e-6)
    }

    /// Patches along each side.
    public var grid: (height: Int, width: Int) { (imageSize[0] / patchSize, imageSize[1] / patchSize) }
    /// Tokens the blocks see: the patches, plus the class token.
    public var tokenCount: Int { grid.height * grid.width + (classToken ? 1 : 0) }

    /// Checks every size and the rules that tie them together.
    func validate() throws {
        func require(_ ok: Bool, _ field: String, _ message: String) throws {
            if !ok { throw ArchitectureError(field: field, message: message) }
        }
        let limit = 1 << 16
        try require(imageSize.count == 2 && imageSize.allSatisfy { (1...limit).contains($0) }, "image_size",
                    "must be [height, width], each between 1 and \(limit), found \(imageSize)")
        try require((1...limit).contains(patchSize), "patch_size", "must be between 1 and \(limit), found \(patchSize)")
        try require(imageSize.allSatisfy { $0 % patchSize == 0 }, "patch_size",
                    "must divide the image size \(imageSize) (timm's patch embedding takes whole patches only)")
        try require((1...limit).contains(embedDim), "embed_dim", "must be between 1 and \(limit), found \(embedDim)")
        try require((1...4096).contains(depth), "depth", "must be between 1 and 4096, found \(depth)")
        try require((1...embedDim).contains(numHeads) && embedDim % numHeads == 0, "num_heads",
                    "must divide embed_dim \(embedDim), found \(numHeads)")
        try require((1...limit).contains(mlpHidden), "mlp_hidden", "must be between 1 and \(limit), found \(mlpHidden)")
        try require(classToken || globalPool != .token, "global_pool", "token pooling needs the class token (class_token true)")
        try require(normEps > 0 && normEps.isFinite, "norm_eps", "must be a positive number, found \(normEps)")
        try require(grid.height * grid.width <= limit, "image_size", "gives \(grid.height * grid.width) patches, more than \(limit)")
    }
}

extension Architecture {
    /// timm's `VisionTransformer` (ViT, DeiT): VisionTransformer.swift.
    public static let vitFamily = "timm_vit"

    /// A vision transformer's architecture; the ResNet fields hold what schedules see (one
    /// stage of `depth` identity blocks of `embed_dim` channels) and are not written.
    public init(vit: VisionTransformerSpec, inChannels: Int, numClasses: Int) {
        self.init(family: Self.vitFamily, block: .basic, inChannels: inChannels, numClasses: numClasses,
                  stemWidth: vit.embedDim, stages: [Stage(blocks: vit.depth, width: vit.embedDim, stride: 1)],
                  shortcut: .projection, convBias: true)
        self.vit = vit
    }

    /// The JSON fields a `timm_vit` architecture takes.
    static var vitFields: Set<String> {
        Set(VisionTransformerSpec.CodingKeys.allCases.map(\.stringValue) + ["family", "in_channels", "num_classes"])
    }

    /// Decodes a `timm_vit` architecture from the same JSON object as the ResNets'.
    static func decodeVisionTransformer(from decoder: Decoder) throws -> Architecture {
        struct Shared: Decodable {
            var inChannels: Int, numClasses: Int
            enum CodingKeys: String, CodingKey { case inChannels = "in_channels", numClasses = "num_classes" }
        }
        let shared = try Shared(from: decoder)
        return Architecture(vit: try VisionTransformerSpec(from: decoder), inChannels: shared.inChannels,
                            numClasses: shared.numClasses)
    }

    /// The `timm_vit` JSON: family, input channels, classes and the spec's fields.
    func visionTransformerJSON(_ vit: VisionTransformerSpec) -> String {
        struct Fields: Encodable {
            var family: String, inChannels: Int, numClasses: Int, vit: VisionTransformerSpec
            enum CodingKeys: String, CodingKey { case family, inChannels = "in_channels", numClasses = "num_classes" }
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(family, forKey: .family)
                try c.encode(inChannels, forKey: .inChannels)
                try c.encode(numClasses, forKey: .numClasses)
                try vit.encode(to: encoder)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try? encoder.encode(Fields(family: family, inChannels: inChannels, numClasses: numClasses, vit: vit))
        return String(decoding: data ?? Data(), as: UTF8.self)
    }
}

extension ModelDescription {
    /// The description of a `timm_vit` architecture.
    init(visionTransformer arch: Architecture, _ vit: VisionTransformerSpec) {
        let c = vit.embedDim, p = vit.patchSize
        func norm(_ key: String) -> ModelOperation { .layerNorm(LayerNormSpec(key: key, channels: c, eps: vit.normEps)) }
        var stem: [ModelOperation] = [
            .convolution(ConvolutionSpec(key: "patch_embed.proj", inChannels: arch.inChannels, outChannels: c, kernel: p,
                                         stride: p, padding: 0, bias: true)),
            .transformer(.tokens),
        ]
        if vit.classToken { stem.append(.transformer(.classToken(key: "cls_token", channels: c))) }
        stem.append(.transformer(.positionEmbedding(key: "pos_embed", channels: c, tokens: vit.tokenCount)))
        var units: [ResidualUnit] = []
        for i in 0..<vit.depth {
            let k = "blocks.\(i)."
            let attention: [ModelOperation] = [
                norm(k + "norm1"),
                .transformer(.selfAttention(AttentionSpec(key: k + "attn", channels: c, heads: vit.numHeads, qkvBias: vit.qkvBias))),
            ] + (vit.layerScale ? [.layerScale(key: k + "ls1.gamma", channels: c)] : [])
            let mlp: [ModelOperation] = [
                norm(k + "norm2"),
                .pointwiseLinear(LinearSpec(key: k + "mlp.fc1", inFeatures: c, outFeatures: vit.mlpHidden)), .gelu,
                .pointwiseLinear(LinearSpec(key: k + "mlp.fc2", inFeatures: vit.mlpHidden, outFeatures: c)),
            ] + (vit.layerScale ? [.layerScale(key: k + "ls2.gamma", channels: c)] : [])
            for (name, branch) in [("attn", attention), ("mlp", mlp)] {
                units.append(ResidualUnit(block: i + 1, stage: 1, name: "blocks.\(i)", inChannels: c, outChannels: c, stride: 1,
                                          branch: branch, branchName: name))
            }
        }
        let pool: ModelOperation = .transformer(vit.globalPool == .token ? .classTokenPool
                                                : .tokenMeanPool(prefixTokens: vit.classToken ? 1 : 0))
        let head: [ModelOperation] = (vit.fcNorm ? [pool, norm("fc_norm")] : [norm("norm"), pool])
            + [.linear(LinearSpec(key: "head", inFeatures: c, outFeatures: arch.numClasses))]
        self.init(family: Architecture.vitFamily, inputChannels: arch.inChannels, classes: arch.numClasses,
                  stem: stem, units: units, head: head)
    }
}

/// What a `--arch` name fixes for a vision transformer that its tensors cannot tell:
/// the number of heads and the pooling. Everything else is read from a dump: input
/// channels, width and patch size from `patch_embed.proj.weight`, the image size from
/// `pos_embed` (a square grid of patches), depth from the `blocks.{i}` present, the MLP
/// width from `blocks.0.mlp.fc1.weight`, classes from `head.weight`, and whether there is
/// a class token, a qkv bias, layer scale or `fc_norm` from which tensors exist.
public struct VisionTransformerPreset: Sendable, Equatable {
    public var numHeads: Int
    public var globalPool: VisionTransformerSpec.Pooling

    public init(numHeads: Int, globalPool: VisionTransformerSpec.Pooling = .token) {
        (self.numHeads, self.globalPool) = (numHeads, globalPool)
    }

    /// The presets `--arch` names: ViT-Ti/S and DeiT-Ti/S at 16x16 patches (timm 1.0).
    static let named: [(String, VisionTransformerPreset)] = [
        ("timm/vit_tiny_patch16_224", .init(numHeads: 3)), ("timm/vit_small_patch16_224", .init(numHeads: 6)),
        ("timm/deit_tiny_patch16_224", .init(numHeads: 3)), ("timm/deit_small_patch16_224", .init(numHeads: 6)),
    ]

    /// The architecture of a dump whose tensor shapes `shape(key)` returns, for the preset `name`.
    /// - Throws: ``PresetError`` naming the tensor that is missing or does not fit.
    func architecture(name: String, shape: (String) throws -> [Int]?) throws -> Architecture {
        func read(_ key: String, rank: Int, _ why: String) throws -> [Int] {
            guard let found = try shape(key) else { throw PresetError(key: key, message: "missing tensor; \(name) \(why)") }
            guard found.count == rank, found.allSatisfy({ $0 > 0 }) else {
                throw PresetError(key: key, message: "shape \(found) in the file, but \(name) needs a \(rank)-D tensor here")
            }
            return found
        }
        for (key, what) in [("reg_token", "register tokens"), ("norm_pre.weight", "a norm before the blocks (pre_norm)"),
                            ("attn_pool.latent", "attention pooling (global_pool='map')"),
                            ("blocks.0.attn.q_norm.weight", "query/key normalisation (qk_norm)")]
        where try shape(key) != nil {
            throw PresetError(key: key, message: "\(name): DepthLens does not support \(what)")
        }
        let patch = try read("patch_embed.proj.weight", rank: 4, "reads the width, input channels and patch size from it")
        guard patch[2] == patch[3] else {
            throw PresetError(key: "patch_embed.proj.weight", message: "shape \(patch): DepthLens supports square patches only")
        }
        let width = patch[0]
        let classToken = try shape("cls_token") != nil
        let positions = try read("pos_embed", rank: 3, "reads the number of tokens (the image size) from it")
        let patches = positions[1] - (classToken ? 1 : 0)
        let side = Int(Double(patches).squareRoot().rounded())
        guard patches > 0, side * side == patches else {
            throw PresetError(key: "pos_embed", message: "shape \(positions) in the file: \(patches) patch positions are not a square grid"
                              + (classToken ? " (the class token has its own position)" : ""))
        }
        var depth = 0
        while try shape("blocks.\(depth).attn.qkv.weight") != nil { depth += 1 }
        guard depth > 0 else { throw PresetError(key: "blocks.0.attn.qkv.weight", message: "missing tensor; \(name) counts its blocks by it") }
        let hidden = try read("blocks.0.mlp.fc1.weight", rank: 2, "reads the MLP width from it")
        let classes = try read("head.weight", rank: 2, "reads the number of classes from it")
        let vit = VisionTransformerSpec(imageSize: [side * patch[2], side * patch[2]], patchSize: patch[2], embedDim: width,
                                        depth: depth, numHeads: numHeads, mlpHidden: hidden[0],
                                        qkvBias: try shape("blocks.0.attn.qkv.bias") != nil, classToken: classToken,
                                        globalPool: globalPool, fcNorm: try shape("fc_norm.weight") != nil,
                                        layerScale: try shape("blocks.0.ls1.gamma") != nil)
        return Architecture(vit: vit, inChannels: patch[1], numClasses: classes[0])
    }
}
