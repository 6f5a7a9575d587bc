/// The `imagenet_resnet` family: the ResNets of He et al. 2015 as timm and torchvision
/// build them (torchvision's "v1.5": the stride sits on a bottleneck's 3x3 convolution).
///
/// Stem: 7x7 convolution with stride 2 and padding 3, batch norm, ReLU, 3x3 max pooling
/// with stride 2 and padding 1. Blocks: `basic` or `bottleneck`, every shape-changing
/// block with a 1x1 convolution plus batch norm shortcut named `downsample.0`/`.1`.
/// Head: global average pooling and `fc`. Drop path (timm) sits on the residual branch
/// right before the add, so a gate scales the output of the last batch norm of the branch.
extension Architecture {
    /// The CIFAR-style family: 3x3 stem, `shortcut.0`/`.1` projections.
    public static let cifarFamily = "cifar_resnet"
    /// The ImageNet-style family of timm and torchvision.
    public static let imageNetFamily = "imagenet_resnet"
    static let families = [cifarFamily, imageNetFamily]

    /// Whether this is the ImageNet-style family.
    public var isImageNetFamily: Bool { family == Self.imageNetFamily }

    /// Output channels of a block per channel of the stage width: 4 for bottlenecks, else 1.
    public var expansion: Int { block == .bottleneck ? 4 : 1 }

    /// Kernel size and stride of the stem convolution.
    var stemKernel: Int { isImageNetFamily ? 7 : 3 }
    var stemStride: Int { isImageNetFamily ? 2 : 1 }

    /// Whether a 3x3, stride-2, padding-1 max pooling follows the stem's ReLU.
    public var stemMaxPool: Bool { isImageNetFamily }

    /// The name of a block's projection shortcut module: `downsample` (timm, torchvision)
    /// or `shortcut` (the CIFAR reference model).
    var projectionName: String { isImageNetFamily ? "downsample" : "shortcut" }

    /// The rules that tie block kind, shortcut and family together.
    func validateFamily() throws {
        if isImageNetFamily {
            guard block != .preact else {
                throw ArchitectureError(field: "block", message: "imagenet_resnet takes basic or bottleneck blocks, not preact")
            }
            guard shortcut == .projection else {
                throw ArchitectureError(field: "shortcut", message: "imagenet_resnet uses projection shortcuts (B), found \(shortcut.rawValue)")
            }
        } else if block == .bottleneck {
            throw ArchitectureError(field: "block", message: "bottleneck blocks need the imagenet_resnet family")
        }
    }
}
