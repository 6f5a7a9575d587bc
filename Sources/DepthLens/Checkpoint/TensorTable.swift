/// The tensors an ``Architecture`` implies, by `state_dict` key, in forward order.
///
/// Names follow the PyTorch reference model (tools/depthlens_ref/model.py): stem
/// `conv1`/`bn1`, blocks `layer{stage}.{b}.conv1|bn1|conv2|bn2|shortcut.0|shortcut.1`,
/// pre-activation `bn_final`, head `fc`. The `imagenet_resnet` family has timm's and
/// torchvision's names: a 7x7 `conv1`, bottlenecks add `conv3|bn3`, projections are
/// `downsample.0|downsample.1`; timm's deep stem is `conv1.0|1|3|4|6` and `bn1`, its
/// `avg_down` projections `downsample.1|downsample.2`.
extension Architecture {
    /// Every expected key with its shape. Convolution weights are OIHW.
    public var expectedTensors: [(key: String, shape: [Int])] {
        var table: [(key: String, shape: [Int])] = []
        func conv(_ name: String, out: Int, in cin: Int, kernel: Int) {
            table.append(("\(name).weight", [out, cin, kernel, kernel]))
            if convBias { table.append(("\(name).bias", [out])) }
        }
        func norm(_ name: String, _ channels: Int) {
            for field in ["weight", "bias", "running_mean", "running_var"] {
                table.append(("\(name).\(field)", [channels]))
            }
        }
        for layer in stemConvolutions {
            conv(layer.name, out: layer.out, in: layer.in, kernel: layer.kernel)
            if block != .preact { norm(layer.norm, layer.out) }
        }
        for spec in blocks {
            let p = spec.keyPrefix
            if block == .bottleneck {
                conv(p + "conv1", out: spec.midChannels, in: spec.inChannels, kernel: 1)
                norm(p + "bn1", spec.midChannels)
                conv(p + "conv2", out: spec.midChannels, in: spec.midChannels, kernel: 3)
                norm(p + "bn2", spec.midChannels)
                conv(p + "conv3", out: spec.outChannels, in: spec.midChannels, kernel: 1)
                norm(p + "bn3", spec.outChannels)
            } else {
                conv(p + "conv1", out: spec.outChannels, in: spec.inChannels, kernel: 3)
                norm(p + "bn1", block == .preact ? spec.inChannels : spec.outChannels)
                conv(p + "conv2", out: spec.outChannels, in: spec.outChannels, kernel: 3)
                norm(p + "bn2", spec.outChannels)
            }
            if spec.shortcut == .projection {
                conv(p + projectionKeys.conv, out: spec.outChannels, in: spec.inChannels, kernel: 1)
                norm(p + projectionKeys.norm, spec.outChannels)
            }
        }
        if block == .preact { norm("bn_final", featureWidth) }
        table.append(("fc.weight", [numClasses, featureWidth]))
        table.append(("fc.bias", [numClasses]))
        return table
    }

    /// Number of learned parameters (batch-norm running statistics excluded).
    public var parameterCount: Int {
        expectedTensors.filter { !$0.key.hasSuffix("running_mean") && !$0.key.hasSuffix("running_var") }
            .reduce(0) { $0 + $1.shape.reduce(1, *) }
    }
}

/// Keys that may appear in a `state_dict` without being parameters of the function the
/// network computes; loading accepts and ignores them.
func isIgnorableTensorKey(_ key: String) -> Bool {
    key.hasSuffix(".num_batches_tracked") || key == "num_batches_tracked"
}
