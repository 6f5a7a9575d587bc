import DepthLensPluginAPI

/// The `imagenet_resnet` family: the ResNets of He et al. 2015 as timm and torchvision
/// build them (torchvision's "v1.5": the stride sits on a bottleneck's 3x3 convolution).
///
/// Stem: 7x7 convolution with stride 2 and padding 3, batch norm, ReLU, 3x3 max pooling
/// with stride 2 and padding 1; or timm's deep stem (`resnet*d`): three 3x3 convolutions,
/// the first with stride 2, `stem_width`, `stem_width` and 2 `stem_width` wide, each
/// followed by batch norm and ReLU, then the max pooling. Blocks: `basic` or `bottleneck`,
/// every shape-changing block with a 1x1 convolution plus batch norm shortcut named
/// `downsample.0`/`.1`, or (`avg_down`, `resnet*d`) 2x2 average pooling with the stride
/// (ceil mode, padding not counted), then the convolution and batch norm, `downsample.1`/`.2`.
/// Head: global average pooling and `fc`. Drop path (timm) sits on the residual branch
/// right before the add, so a gate scales the output of the last batch norm of the branch.
extension Architecture {
    /// The stem of an `imagenet_resnet`.
    public enum StemKind: String, Codable, CaseIterable, Sendable {
        /// 7x7 convolution with stride 2 (`conv1`, `bn1`).
        case conv7x7 = "7x7"
        /// timm's deep stem: `conv1.0`, `.1` (BN), `.3`, `.4` (BN), `.6`, then `bn1`.
        case deep
    }

    /// How an `imagenet_resnet`'s projection shortcuts downsample.
    public enum DownsampleKind: String, Codable, CaseIterable, Sendable {
        /// 1x1 convolution with the stride, batch norm (`downsample.0`, `.1`).
        case conv
        /// timm's `avg_down`: 2x2 average pooling with the stride (none at stride 1), 1x1
        /// convolution, batch norm (`downsample.1`, `.2`).
        case avg
    }

    /// The CIFAR-style family: 3x3 stem, `shortcut.0`/`.1` projections.
    public static let cifarFamily = "cifar_resnet"
    /// The ImageNet-style family of timm and torchvision.
    public static let imageNetFamily = "imagenet_resnet"
    /// timm's ConvNeXt (ConvNeXtArchitecture.swift).
    public static let convNeXtFamily = "timm_convnext"
    static let families = [cifarFamily, imageNetFamily, convNeXtFamily, vitFamily]

    /// Whether this is the ImageNet-style family.
    public var isImageNetFamily: Bool { family == Self.imageNetFamily }

    /// Output channels of a block per channel of the stage width: 4 for bottlenecks, else 1.
    public var expansion: Int { block == .bottleneck ? 4 : 1 }

    /// Whether the stem is timm's deep stem.
    public var hasDeepStem: Bool { stem == .deep }

    /// Channels leaving the stem: twice `stem_width` for the deep stem.
    public var stemOutputWidth: Int { hasDeepStem ? 2 * stemWidth : stemWidth }

    /// The stem's convolutions in order: `state_dict` name, output and input channels,
    /// kernel, stride, and the batch norm that follows.
    var stemConvolutions: [(name: String, out: Int, in: Int, kernel: Int, stride: Int, norm: String)] {
        if hasDeepStem {
            return [("conv1.0", stemWidth, inChannels, 3, 2, "conv1.1"), ("conv1.3", stemWidth, stemWidth, 3, 1, "conv1.4"),
                    ("conv1.6", 2 * stemWidth, stemWidth, 3, 1, "bn1")]
        }
        return [("conv1", stemWidth, inChannels, isImageNetFamily ? 7 : 3, isImageNetFamily ? 2 : 1, "bn1")]
    }

    /// Whether projection shortcuts average-pool before their convolution (`avg_down`).
    public var averagePoolDownsample: Bool { downsample == .avg }

    /// Whether a 3x3, stride-2, padding-1 max pooling follows the stem's ReLU.
    public var stemMaxPool: Bool { isImageNetFamily }

    /// The names of a block's projection convolution and batch norm (after the block's
    /// key prefix): `downsample.0`/`.1` (timm, torchvision), `downsample.1`/`.2` (timm's
    /// `avg_down`), `shortcut.0`/`.1` (the CIFAR reference model).
    var projectionKeys: (conv: String, norm: String) {
        guard isImageNetFamily else { return ("shortcut.0", "shortcut.1") }
        return averagePoolDownsample ? ("downsample.1", "downsample.2") : ("downsample.0", "downsample.1")
    }

    /// The rules that tie block kind, shortcut and family together.
    func validateFamily() throws {
        if isImageNetFamily {
            guard block != .preact else {
                throw ArchitectureError(field: "block", message: "imagenet_resnet takes basic or bottleneck blocks, not preact")
            }
            guard shortcut == .projection else {
                throw ArchitectureError(field: "shortcut", message: "imagenet_resnet uses projection shortcuts (B), found \(shortcut.rawValue)")
            }
            if averagePoolDownsample, let s = stages.firstIndex(where: { $0.stride > 2 }) {
                throw ArchitectureError(field: "stages[\(s)].stride", message: "average-pool downsampling takes strides 1 or 2")
            }
        } else if block == .bottleneck {
            throw ArchitectureError(field: "block", message: "bottleneck blocks need the imagenet_resnet family")
        } else if stem != nil || downsample != nil {
            throw ArchitectureError(field: stem != nil ? "stem" : "downsample", message: "applies to the imagenet_resnet family only")
        }
    }
}
