import Foundation

/// The architecture that tools/train_timm.py records in an exported `.safetensors` file
/// (metadata `depthlens_architecture`): timm's class and the keyword arguments it was
/// built with, from which the format v1 architecture follows. Arguments that change only
/// training (dropout and drop-path rates, initialisation) are ignored; any other that
/// changes the network beyond what DepthLens runs is refused by name.
extension Architecture {
    /// timm's class name for the vision transformer.
    public static let timmVisionTransformerClass = "timm.models.vision_transformer.VisionTransformer"

    /// The architecture of `timm_class` built with `kwargs` (JSON values).
    /// - Throws: ``ArchitectureError`` naming the argument that is unsupported or mistyped.
    public static func fromTimm(className: String, kwargs: [String: Any]) throws -> Architecture {
        switch className {
        case timmVisionTransformerClass:
            return try visionTransformer(timmKwargs: kwargs)
        default:
            throw ArchitectureError(field: "timm_class", message: "DepthLens does not read timm's \(className) (supported: \(timmVisionTransformerClass))")
        }
    }

    /// timm's `VisionTransformer(**kwargs)` with timm 1.0's defaults.
    static func visionTransformer(timmKwargs kwargs: [String: Any]) throws -> Architecture {
        func field(_ name: String) -> String { "timm_kwargs.\(name)" }
        func int(_ name: String, _ fallback: Int) throws -> Int {
            guard let value = kwargs[name] else { return fallback }
            if let list = value as? [Any], list.count == 2, let a = list[0] as? Int, let b = list[1] as? Int, a == b { return a }
            guard let number = value as? Int else {
                throw ArchitectureError(field: field(name), message: "expected an integer (square sizes only), found \(value)")
            }
            return number
        }
        func bool(_ name: String, _ fallback: Bool) throws -> Bool {
            guard let value = kwargs[name], !(value is NSNull) else { return fallback }
            guard let flag = value as? Bool else { throw ArchitectureError(field: field(name), message: "expected true or false, found \(value)") }
            return flag
        }
        let ignored: Set<String> = ["drop_rate", "pos_drop_rate", "patch_drop_rate", "proj_drop_rate", "attn_drop_rate",
                                    "drop_path_rate", "weight_init", "fix_init"]
        let unsupported: [String: (Any) -> Bool] = [
            "reg_tokens": { ($0 as? Int ?? 1) != 0 }, "no_embed_class": { ($0 as? Bool) != false },
            "pre_norm": { ($0 as? Bool) != false }, "final_norm": { ($0 as? Bool) != true },
            "dynamic_img_size": { ($0 as? Bool) != false }, "dynamic_img_pad": { ($0 as? Bool) != false },
            "qk_norm": { ($0 as? Bool) != false }, "proj_bias": { ($0 as? Bool) != true },
            "pos_embed": { ($0 as? String) != "learn" }, "scale_attn_norm": { ($0 as? Bool) != false },
            "scale_mlp_norm": { ($0 as? Bool) != false }, "pool_include_prefix": { ($0 as? Bool) != false },
        ]
        let known: Set<String> = ["img_size", "patch_size", "in_chans", "num_classes", "global_pool", "embed_dim", "depth",
                                  "num_heads", "mlp_ratio", "qkv_bias", "init_values", "class_token", "fc_norm"]
        for name in kwargs.keys.sorted() where !ignored.contains(name) && !known.contains(name) {
            if let refuses = unsupported[name] {
                if refuses(kwargs[name]!) {
                    throw ArchitectureError(field: field(name), message: "DepthLens does not support \(name)=\(kwargs[name]!) in timm's VisionTransformer")
                }
            } else {
                throw ArchitectureError(field: field(name), message: "DepthLens does not know this VisionTransformer argument (known: \(known.sorted().joined(separator: ", ")))")
            }
        }
        let embed = try int("embed_dim", 768)
        guard let ratio = (kwargs["mlp_ratio"] as? NSNumber)?.doubleValue ?? (kwargs["mlp_ratio"] == nil ? 4.0 : nil) else {
            throw ArchitectureError(field: field("mlp_ratio"), message: "expected a number")
        }
        let pool: VisionTransformerSpec.Pooling
        switch kwargs["global_pool"] as? String ?? "token" {
        case "token": pool = .token
        case "avg": pool = .avg
        case let other:
            throw ArchitectureError(field: field("global_pool"), message: "DepthLens supports 'token' and 'avg' pooling, not '\(other)'")
        }
        let side = try int("img_size", 224)
        let layerScale = kwargs["init_values"].map { !($0 is NSNull) } ?? false
        let fcNorm: Bool? = kwargs["fc_norm"] is NSNull ? nil : try kwargs["fc_norm"].map { _ in try bool("fc_norm", false) }
        let vit = VisionTransformerSpec(imageSize: [side, side], patchSize: try int("patch_size", 16), embedDim: embed,
                                        depth: try int("depth", 12), numHeads: try int("num_heads", 12),
                                        // timm: hidden_features = int(dim * mlp_ratio)
                                        mlpHidden: Int(Double(embed) * ratio), qkvBias: try bool("qkv_bias", true),
                                        classToken: try bool("class_token", true), globalPool: pool, fcNorm: fcNorm,
                                        layerScale: layerScale)
        let architecture = Architecture(vit: vit, inChannels: try int("in_chans", 3), numClasses: try int("num_classes", 1000))
        try architecture.validate()
        return architecture
    }
}
