import DepthLensPluginAPI

/// The model description of both ResNet families (Architecture.swift, ImageNetResNet.swift):
/// `cifar_resnet`, the Stochastic Depth paper's networks and their PyTorch reference model
/// (tools/depthlens_ref/model.py), and `imagenet_resnet`, timm's and torchvision's. Key
/// names are those models' `state_dict` keys.
extension ModelDescription {
    /// The description of a `cifar_resnet` or `imagenet_resnet` architecture.
    init(resNet architecture: Architecture) {
        let builder = ResNetBuilder(architecture: architecture)
        self.init(family: architecture.family, inputChannels: architecture.inChannels, classes: architecture.numClasses,
                  stem: builder.stem, units: architecture.blocks.map(builder.unit), head: builder.head)
    }
}

/// Builds the operations of one ResNet architecture.
private struct ResNetBuilder {
    let architecture: Architecture

    private var preact: Bool { architecture.block == .preact }

    func conv(_ key: String, _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1,
              bias: Bool? = nil) -> ModelOperation {
        .convolution(ConvolutionSpec(key: key, inChannels: inChannels, outChannels: outChannels, kernel: kernel,
                                     stride: stride, bias: bias ?? architecture.convBias))
    }

    func norm(_ key: String, _ channels: Int) -> ModelOperation {
        .batchNorm(BatchNormSpec(key: key, channels: channels, eps: architecture.bnEps))
    }

    /// A 3x3 stem convolution (CIFAR), a 7x7/2 one or timm's deep stem (ImageNet), each
    /// followed by batch norm and ReLU but in pre-activation networks; then the ImageNet
    /// stem's 3x3/2 max pooling.
    var stem: [ModelOperation] {
        var ops: [ModelOperation] = []
        for layer in architecture.stemConvolutions {
            ops.append(conv(layer.name, layer.in, layer.out, kernel: layer.kernel, stride: layer.stride))
            if !preact { ops += [norm(layer.norm, layer.out), .relu] }
        }
        if architecture.stemMaxPool {
            ops.append(.maxPool(kernel: 3, stride: 2, padding: 1))
        }
        return ops
    }

    func unit(_ spec: BlockSpec) -> ResidualUnit {
        let p = spec.keyPrefix
        let (cin, mid, out, s) = (spec.inChannels, spec.midChannels, spec.outChannels, spec.stride)
        let branch: [ModelOperation]
        switch architecture.block {
        case .basic:
            branch = [conv(p + "conv1", cin, out, kernel: 3, stride: s), norm(p + "bn1", out), .relu,
                      conv(p + "conv2", out, out, kernel: 3), norm(p + "bn2", out)]
        case .preact:
            branch = [conv(p + "conv1", cin, out, kernel: 3, stride: s), norm(p + "bn2", out), .relu,
                      conv(p + "conv2", out, out, kernel: 3)]
        case .bottleneck:
            branch = [conv(p + "conv1", cin, mid, kernel: 1), norm(p + "bn1", mid), .relu,
                      conv(p + "conv2", mid, mid, kernel: 3, stride: s), norm(p + "bn2", mid), .relu,
                      conv(p + "conv3", mid, out, kernel: 1), norm(p + "bn3", out)]
        }
        return ResidualUnit(block: spec.index, stage: spec.stage, name: String(spec.keyPrefix.dropLast()),
                            inChannels: cin, outChannels: out, stride: s,
                            preActivation: preact ? [norm(p + "bn1", cin), .relu] : [], branch: branch,
                            shortcut: shortcut(spec),
                            // A pre-activation projection reads relu(bn1(x)), as the reference model does,
                            // unless `preact_shortcut_input` is `input` (fb.resnet.torch).
                            shortcutInput: preact && spec.shortcut == .projection && architecture.preactShortcutInput != .input
                                ? .preActivated : .unitInput,
                            afterAdd: preact ? [] : [.relu])
    }

    func shortcut(_ spec: BlockSpec) -> [ModelOperation] {
        switch spec.shortcut {
        case .identity:
            return []
        case .zeroPadded:
            let extra = spec.outChannels - spec.inChannels
            let before = architecture.channelPadding == .both ? extra / 2 : 0
            return [.zeroChannels(ZeroChannelsSpec(averagePool: architecture.shortcut == .averagePoolThenPad,
                                                   stride: spec.stride, before: before, after: extra - before))]
        case .projection:
            let keys = architecture.projectionKeys
            // timm's avg_down pools to the output size first, then convolves with stride 1.
            let pooled = architecture.averagePoolDownsample && spec.stride == 2
            let projection = [conv(spec.keyPrefix + keys.conv, spec.inChannels, spec.outChannels, kernel: 1,
                                   stride: pooled ? 1 : spec.stride, bias: architecture.projectionBias),
                              norm(spec.keyPrefix + keys.norm, spec.outChannels)]
            return pooled ? [.averagePool2x2] + projection : projection
        }
    }

    /// Pre-activation networks end with batch norm and ReLU; then global average pooling
    /// and the linear classifier `fc`.
    var head: [ModelOperation] {
        let features = architecture.featureWidth
        return (preact ? [norm("bn_final", features), .relu] : [])
            + [.globalAveragePool, .linear(LinearSpec(key: "fc", inFeatures: features, outFeatures: architecture.numClasses))]
    }
}
