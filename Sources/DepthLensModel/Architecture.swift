import Foundation
import DepthLensPluginAPI

/// The network a checkpoint describes: a residual network of any number of stages,
/// blocks per stage, widths, input channels and classes, in one of two families:
/// `cifar_resnet` (3x3 stem, the Stochastic Depth paper's networks) or `imagenet_resnet`
/// (7x7 stem with max pooling, basic or bottleneck blocks: timm's and torchvision's
/// ResNets, see ImageNetResNet.swift).
///
/// Stored as JSON in the checkpoint's `architecture` attribute; field names are the
/// JSON keys in snake case (docs/checkpoint-format.md).
public struct Architecture: Codable, Equatable, Sendable {
    /// Which kind of residual block the stages are built from.
    public enum BlockKind: String, Codable, CaseIterable, Sendable {
        /// conv-BN-ReLU-conv-BN, add, ReLU (He et al. 2015; the Stochastic Depth paper).
        case basic
        /// BN-ReLU-conv-BN-ReLU-conv, add, no ReLU after the add (He et al. 2016).
        case preact
        /// 1x1 conv-BN-ReLU, 3x3 conv (with the stride)-BN-ReLU, 1x1 conv-BN, add, ReLU;
        /// four times as many output channels as the stage width (`imagenet_resnet` only).
        case bottleneck
    }

    /// How a block whose input and output shapes differ forms its shortcut.
    public enum ShortcutKind: String, Codable, CaseIterable, Sendable {
        /// Option A as in the paper: average pooling with the stride, then zero channels.
        case averagePoolThenPad = "A_avgpool"
        /// Option A as in common PyTorch ports: `x[:, :, ::s, ::s]`, then zero channels.
        case subsampleThenPad = "A_subsample"
        /// Option B: 1x1 convolution with the stride, then batch norm.
        case projection = "B"
    }

    /// Where option A puts the appended zero channels.
    public enum ChannelPadding: String, Codable, CaseIterable, Sendable {
        /// After the existing channels (the official Lua code's `nn.Padding`).
        case end
        /// Half before and half after (`F.pad(..., (0,0,0,0,k//2,k-k//2))` in some ports).
        case both
    }

    /// What a pre-activation block's projection shortcut reads.
    public enum PreactShortcutInput: String, Codable, CaseIterable, Sendable {
        /// relu(bn1(x)), as the branch does (Kaiming He's and most PyTorch ports).
        case preactivated
        /// The block input x (fb.resnet.torch's `preact` blocks).
        case input
    }

    /// One stage: `blocks` blocks of `width` channels (the inner width of a bottleneck,
    /// whose output has ``Architecture/expansion`` times as many); the first uses `stride`.
    public struct Stage: Codable, Equatable, Sendable {
        public var blocks: Int
        public var width: Int
        public var stride: Int

        public init(blocks: Int, width: Int, stride: Int) {
            self.blocks = blocks
            self.width = width
            self.stride = stride
        }
    }

    /// ``cifarFamily`` or ``imageNetFamily``.
    public var family: String
    public var block: BlockKind
    public var inChannels: Int
    public var numClasses: Int
    public var stemWidth: Int
    public var stages: [Stage]
    public var shortcut: ShortcutKind
    public var channelPadding: ChannelPadding
    /// Whether convolutions carry a bias (true in the official Lua code).
    public var convBias: Bool
    /// Whether projection shortcuts' 1x1 convolutions carry a bias; nil: as ``convBias``.
    public var projectionBias: Bool?
    /// Pre-activation blocks with a projection shortcut: what it reads; nil: ``PreactShortcutInput/preactivated``.
    public var preactShortcutInput: PreactShortcutInput?
    /// Batch-norm epsilon.
    public var bnEps: Double
    /// `imagenet_resnet` only: the stem (nil: the 7x7 convolution).
    public var stem: StemKind?
    /// `imagenet_resnet` only: how projection shortcuts downsample (nil: strided 1x1 convolution).
    public var downsample: DownsampleKind?
    /// `timm_vit` only: the vision transformer (VisionTransformer.swift); nil for the ResNets.
    public var vit: VisionTransformerSpec?
    /// `timm_convnext` only: ConvNeXt's settings (ConvNeXtArchitecture.swift). Its stages,
    /// widths and stem width above are derived from them.
    public var convNeXt: ConvNeXtSettings?

    public init(family: String = Architecture.cifarFamily, block: BlockKind = .basic, inChannels: Int,
                numClasses: Int, stemWidth: Int, stages: [Stage],
                shortcut: ShortcutKind = .averagePoolThenPad, channelPadding: ChannelPadding = .end,
                convBias: Bool = true, bnEps: Double = 1e-5, stem: StemKind? = nil, downsample: DownsampleKind? = nil,
                projectionBias: Bool? = nil, preactShortcutInput: PreactShortcutInput? = nil) {
        self.family = family
        self.block = block
        self.inChannels = inChannels
        self.numClasses = numClasses
        self.stemWidth = stemWidth
        self.stages = stages
        self.shortcut = shortcut
        self.channelPadding = channelPadding
        self.convBias = convBias
        self.bnEps = bnEps
        self.stem = stem
        self.downsample = downsample
        self.projectionBias = projectionBias
        self.preactShortcutInput = preactShortcutInput
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case family, block, stages, shortcut
        case inChannels = "in_channels", numClasses = "num_classes", stemWidth = "stem_width"
        case channelPadding = "channel_padding", convBias = "conv_bias", bnEps = "bn_eps"
        case stem, downsample
        case projectionBias = "projection_bias", preactShortcutInput = "preact_shortcut_input"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        family = try c.decode(String.self, forKey: .family)
        if family == Self.vitFamily {
            self = try Self.decodeVisionTransformer(from: decoder)
            return
        }
        if family == Self.convNeXtFamily {
            self = try Architecture(convNeXt: try ConvNeXtSettings(from: decoder))
            return
        }
        block = try c.decode(BlockKind.self, forKey: .block)
        inChannels = try c.decode(Int.self, forKey: .inChannels)
        numClasses = try c.decode(Int.self, forKey: .numClasses)
        stemWidth = try c.decode(Int.self, forKey: .stemWidth)
        stages = try c.decode([Stage].self, forKey: .stages)
        shortcut = try c.decode(ShortcutKind.self, forKey: .shortcut)
        channelPadding = try c.decodeIfPresent(ChannelPadding.self, forKey: .channelPadding) ?? .end
        convBias = try c.decodeIfPresent(Bool.self, forKey: .convBias) ?? true
        bnEps = try c.decodeIfPresent(Double.self, forKey: .bnEps) ?? 1e-5
        stem = try c.decodeIfPresent(StemKind.self, forKey: .stem)
        downsample = try c.decodeIfPresent(DownsampleKind.self, forKey: .downsample)
        projectionBias = try c.decodeIfPresent(Bool.self, forKey: .projectionBias)
        preactShortcutInput = try c.decodeIfPresent(PreactShortcutInput.self, forKey: .preactShortcutInput)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(family, forKey: .family)
        if let vit {
            try c.encode(inChannels, forKey: .inChannels)
            try c.encode(numClasses, forKey: .numClasses)
            try vit.encode(to: encoder)
            return
        }
        if let convNeXt {
            try convNeXt.encode(to: encoder)
            return
        }
        try c.encode(block, forKey: .block)
        try c.encode(inChannels, forKey: .inChannels)
        try c.encode(numClasses, forKey: .numClasses)
        try c.encode(stemWidth, forKey: .stemWidth)
        try c.encode(stages, forKey: .stages)
        try c.encode(shortcut, forKey: .shortcut)
        try c.encode(channelPadding, forKey: .channelPadding)
        try c.encode(convBias, forKey: .convBias)
        try c.encode(bnEps, forKey: .bnEps)
        try c.encodeIfPresent(stem, forKey: .stem)
        try c.encodeIfPresent(downsample, forKey: .downsample)
        try c.encodeIfPresent(projectionBias, forKey: .projectionBias)
        try c.encodeIfPresent(preactShortcutInput, forKey: .preactShortcutInput)
    }

    /// Parses and validates the JSON description.
    /// - Throws: ``ArchitectureError`` naming the field that is missing, mistyped, unknown
    ///   or out of range.
    public static func parse(json: String) throws -> Architecture {
        let data = Data(json.utf8)
        guard let object = try? JSONSerialization.jsonObject(with: data), let fields = object as? [String: Any] else {
            throw ArchitectureError(field: "", message: jsonProblem(json))
        }
        let family = fields["family"] as? String
        let known = family == vitFamily ? vitFields : family == convNeXtFamily ? ConvNeXtSettings.fieldNames
            : Set(CodingKeys.allCases.map(\.stringValue))
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw ArchitectureError(field: unknown, message: "unknown field (known: \(known.sorted().joined(separator: ", ")))")
        }
        let architecture: Architecture
        do {
            architecture = try JSONDecoder().decode(Architecture.self, from: data)
        } catch let error as DecodingError {
            throw ArchitectureError(decoding: error)
        }
        try architecture.validate()
        return architecture
    }

    /// The JSON description, with sorted keys.
    public func json() -> String {
        if let vit { return visionTransformerJSON(vit) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Checks every count, width and stride, and that option A never has to drop channels.
    public func validate() throws {
        func require(_ ok: Bool, _ field: String, _ message: String) throws {
            if !ok { throw ArchitectureError(field: field, message: message) }
        }
        let limit = 1 << 16
        try require(Self.families.contains(family), "family",
                    "unsupported family '\(family)' (format v1 knows \(Self.families.joined(separator: ", ")))")
        if let vit {
            try require((1...limit).contains(inChannels), "in_channels", "must be between 1 and \(limit), found \(inChannels)")
            try require((1...limit).contains(numClasses), "num_classes", "must be between 1 and \(limit), found \(numClasses)")
            return try vit.validate()
        }
        if family == Self.convNeXtFamily {
            guard let convNeXt else { throw ArchitectureError(field: "family", message: "timm_convnext needs its settings") }
            try convNeXt.validate(inChannels: inChannels, numClasses: numClasses)
            return
        }
        try validateFamily()
        try require((1...limit).contains(inChannels), "in_channels", "must be between 1 and \(limit), found \(inChannels)")
        try require((1...limit).contains(numClasses), "num_classes", "must be between 1 and \(limit), found \(numClasses)")
        try require((1...limit).contains(stemWidth), "stem_width", "must be between 1 and \(limit), found \(stemWidth)")
        try require(!stages.isEmpty, "stages", "must list at least one stage")
        try require(bnEps > 0 && bnEps.isFinite, "bn_eps", "must be a positive number, found \(bnEps)")
        try require(projectionBias == nil || shortcut == .projection, "projection_bias",
                    "applies to projection shortcuts (shortcut B) only, but shortcut is \(shortcut.rawValue)")
        try require(preactShortcutInput == nil || (block == .preact && shortcut == .projection), "preact_shortcut_input",
                    "applies to preact blocks with projection shortcuts (shortcut B) only, but block is \(block.rawValue) and shortcut \(shortcut.rawValue)")
        var width = stemOutputWidth
        for (s, stage) in stages.enumerated() {
            let field = "stages[\(s)]"
            try require((1...limit).contains(stage.blocks), "\(field).blocks", "must be between 1 and \(limit), found \(stage.blocks)")
            try require((1...limit).contains(stage.width), "\(field).width", "must be between 1 and \(limit), found \(stage.width)")
            try require((1...16).contains(stage.stride), "\(field).stride", "must be between 1 and 16, found \(stage.stride)")
            if shortcut != .projection {
                try require(stage.width * expansion >= width, "\(field).width",
                            "option A shortcuts can only add channels, but width \(stage.width) is narrower than the \(width) before it")
            }
            width = stage.width * expansion
        }
    }

    /// Every residual block in forward order, numbered globally from 1.
    ///
    /// A ResNet block that changes the shape (its stage's first) has a projection or
    /// zero-padding shortcut. A ConvNeXt block never does: its stage's downsampling (layer
    /// norm and 2x2/2 convolution, timm's `stages.S.downsample`) belongs to the stage and
    /// stays when the first block is deleted, so every block is described as timm's
    /// `stages.S.blocks.B` module is: identity shortcut, stride 1, the stage's width in and
    /// out. (Reordering still never moves a stage's first block: it is the model
    /// description's units, which carry the downsampling, that are swapped.) A vision
    /// transformer's blocks are identity blocks of its width, `blocks.B`.
    public var blocks: [BlockSpec] {
        var result: [BlockSpec] = []
        var channels = stemOutputWidth
        for (s, stage) in stages.enumerated() {
            let out = stage.width * expansion
            for b in 0..<stage.blocks {
                if isConvNeXt || vit != nil {
                    let prefix = vit != nil ? "blocks.\(result.count)." : "stages.\(s).blocks.\(b)."
                    result.append(BlockSpec(index: result.count + 1, stage: s + 1, indexInStage: b, inChannels: out,
                                            midChannels: stage.width, outChannels: out, stride: 1, shortcut: .identity,
                                            keyPrefix: prefix))
                    continue
                }
                let stride = b == 0 ? stage.stride : 1
                let identity = stride == 1 && channels == out
                let kind: BlockSpec.Shortcut = identity ? .identity : (shortcut == .projection ? .projection : .zeroPadded)
                result.append(BlockSpec(index: result.count + 1, stage: s + 1, indexInStage: b, inChannels: channels,
                                        midChannels: stage.width, outChannels: out, stride: stride, shortcut: kind))
                channels = out
            }
        }
        return result
    }

    /// Total number of residual blocks L.
    public var blockCount: Int { stages.reduce(0) { $0 + $1.blocks } }

    /// Channels entering the head.
    public var featureWidth: Int { stages.last.map { $0.width * expansion } ?? stemOutputWidth }
}

/// A problem in the architecture description, naming the JSON field.
public struct ArchitectureError: Error, CustomStringConvertible, Equatable {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    package init(decoding error: DecodingError) {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }
                .joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            self.init(field: parent.isEmpty ? key.stringValue : "\(parent).\(key.stringValue)", message: "missing field")
        case .typeMismatch(let type, let context):
            self.init(field: path(context), message: "expected \(Self.describe(type))")
        case .valueNotFound(let type, let context):
            self.init(field: path(context), message: "expected \(Self.describe(type)), found null")
        case .dataCorrupted(let context):
            let detail = context.debugDescription.contains("Cannot initialize")
                ? "unknown value (\(context.debugDescription.components(separatedBy: "from invalid String value ").last ?? ""))"
                : context.debugDescription
            self.init(field: path(context), message: detail)
        @unknown default:
            self.init(field: "", message: "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default: return "\(type)"
        }
    }

    public var description: String {
        field.isEmpty ? "architecture \(message)" : "architecture field '\(field)': \(message)"
    }
}

extension Architecture {
    /// p_l for every block under a schedule named as a checkpoint records it (name and
    /// numeric parameters), or nil when `registry` knows no schedule of that name or the
    /// parameters do not fit it (nothing to compare against).
    public func survivalProbabilities(schedule name: String, params: [String: Double],
                                      registry: PluginRegistry = .shared) -> [Double]? {
        guard registry.schedules.contains(where: { $0.name == name }) else { return nil }
        let spec = name + (params.isEmpty ? "" : ":" + params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
        return try? registry.survivalProbabilities(spec, for: self)
    }
}

extension PluginRegistry {
    /// p_l for every block of `architecture` under the schedule `spec`: see
    /// ``PluginRegistry/survivalProbabilities(_:for:)-(_,[BlockSpec])``.
    public func survivalProbabilities(_ spec: String, for architecture: Architecture) throws -> [Double] {
        try survivalProbabilities(spec, for: architecture.blocks)
    }
}

/// Why a metadata attribute's text is not a JSON object, in words.
package func jsonProblem(_ text: String) -> String {
    guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
        for token in ["NaN", "Infinity"] where text.contains(token) {
            return "is not valid JSON: \(token) is not a JSON number (write null or a finite number)"
        }
        return "is not a JSON object (not valid JSON: unbalanced brackets, a trailing comma, or a truncated text?)"
    }
    return "is not a JSON object (found \(object is [Any] ? "an array" : "a single value"))"
}
