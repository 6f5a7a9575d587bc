/// One residual block of a network, as schedules and metrics see it: its number, stage,
/// channels, stride and shortcut kind. (The model's own description, with every
/// operation, is `ModelDescription` in DepthLensModel.)
public struct BlockSpec: Equatable, Sendable {
    /// What the shortcut path of a block does.
    public enum Shortcut: String, Equatable, Sendable {
        /// Input passes unchanged.
        case identity
        /// Option A: spatial downsampling (pooling or subsampling), then zero channels.
        case zeroPadded = "option A"
        /// Option B: 1x1 convolution plus batch norm.
        case projection = "option B"
    }

    /// Global block number l, from 1 to L in forward order.
    public var index: Int
    /// Stage number, from 1.
    public var stage: Int
    /// Position inside the stage, from 0 (the `b` in `layer{stage}.{b}.`, `stages.{s}.blocks.{b}.`).
    public var indexInStage: Int
    public var inChannels: Int
    /// Channels inside the residual branch: the stage width (equal to `outChannels` but
    /// for bottlenecks).
    public var midChannels: Int
    public var outChannels: Int
    public var stride: Int
    /// Whether deleting the block (gate 0) leaves its input unchanged (identity) or passes
    /// it through a projection or zero padding. A ConvNeXt block is always identity: the
    /// stage's downsampling is the stage's, and stays when the block is deleted.
    public var shortcut: Shortcut
    /// The `state_dict` key prefix of this block in its family: `layer2.0.` (ResNets),
    /// `stages.1.blocks.0.` (timm's ConvNeXt), `blocks.3.` (timm's vision transformers).
    public var keyPrefix: String

    /// - Parameter keyPrefix: nil: a ResNet's, `layer{stage}.{indexInStage}.`.
    public init(index: Int, stage: Int, indexInStage: Int, inChannels: Int, midChannels: Int, outChannels: Int,
                stride: Int, shortcut: Shortcut, keyPrefix: String? = nil) {
        (self.index, self.stage, self.indexInStage) = (index, stage, indexInStage)
        (self.inChannels, self.midChannels, self.outChannels) = (inChannels, midChannels, outChannels)
        (self.stride, self.shortcut) = (stride, shortcut)
        self.keyPrefix = keyPrefix ?? "layer\(stage).\(indexInStage)."
    }
}
