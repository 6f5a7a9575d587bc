import DepthLensPluginAPI

/// The model description of `timm_convnext` (ConvNeXtArchitecture.swift); key names are
/// timm's `state_dict` keys.
///
/// One residual unit per block, gate l scaling block l's branch (timm's drop path sits
/// right before the add). A stage's downsampling (layer norm, 2x2/2 convolution) is the
/// pre-activation of its first unit, read by an identity shortcut on the pre-activated
/// input: dropping that block leaves the downsampling in place, as timm's
/// `ConvNeXtStage` does, and the unit counts as shape-changing, so it never moves when
/// blocks are reordered.
extension ModelDescription {
    init(convNeXt architecture: Architecture) {
        guard let settings = architecture.convNeXt else { preconditionFailure("a timm_convnext architecture without its settings") }
        let eps = settings.normEps
        func norm(_ key: String, _ channels: Int) -> ModelOperation {
            .layerNorm(LayerNormSpec(key: key, channels: channels, eps: eps))
        }
        let stem: [ModelOperation] = [
            .convolution(ConvolutionSpec(key: "stem.0", inChannels: settings.inChannels, outChannels: settings.dims[0],
                                         kernel: settings.patchSize, stride: settings.patchSize, padding: 0, bias: settings.convBias)),
            norm("stem.1", settings.dims[0]),
        ]
        var units: [ResidualUnit] = []
        var channels = settings.dims[0]
        for (s, (depth, width)) in zip(settings.depths, settings.dims).enumerated() {
            let stride = settings.stageStrides[s]
            let downsample: [ModelOperation] = stride > 1 || channels != width
                ? [norm("stages.\(s).downsample.0", channels),
                   .convolution(ConvolutionSpec(key: "stages.\(s).downsample.1", inChannels: channels, outChannels: width,
                                                kernel: stride > 1 ? 2 : 1, stride: stride, padding: 0, bias: settings.convBias))]
                : []
            let hidden = settings.hiddenWidth(s)
            for b in 0..<depth {
                let key = "stages.\(s).blocks.\(b)."
                let pre = b == 0 ? downsample : []
                var branch: [ModelOperation] = [
                    .convolution(ConvolutionSpec(key: key + "conv_dw", inChannels: width, outChannels: width,
                                                 kernel: settings.kernelSize, bias: settings.convBias, groups: width)),
                    norm(key + "norm", width),
                    // timm's Mlp keeps its biases whatever conv_bias says.
                    .pointwiseLinear(LinearSpec(key: key + "mlp.fc1", inFeatures: width, outFeatures: hidden,
                                                convolutionWeight: settings.convMLP)),
                    .gelu,
                    .pointwiseLinear(LinearSpec(key: key + "mlp.fc2", inFeatures: hidden, outFeatures: width,
                                                convolutionWeight: settings.convMLP)),
                ]
                if settings.layerScale { branch.append(.layerScale(key: key + "gamma", channels: width)) }
                units.append(ResidualUnit(block: units.count + 1, stage: s + 1, name: String(key.dropLast()),
                                          inChannels: b == 0 ? channels : width, outChannels: width,
                                          stride: b == 0 ? stride : 1, preActivation: pre, branch: branch,
                                          shortcutInput: pre.isEmpty ? .unitInput : .preActivated))
            }
            channels = width
        }
        let head: [ModelOperation] = [
            .globalAveragePool, norm("head.norm", channels),
            .linear(LinearSpec(key: "head.fc", inFeatures: channels, outFeatures: settings.numClasses, bias: true)),
        ]
        self.init(family: architecture.family, inputChannels: settings.inChannels, classes: settings.numClasses,
                  stem: stem, units: units, head: head)
    }
}
