import DepthLensFormats
import DepthLensModel

/// Turns a ``ModelDescription``'s operations into evaluation ``Layer``s: each batch norm
/// or layer scale that follows a convolution (or pointwise linear layer, which becomes a
/// 1x1 convolution) is folded into it, and each ReLU fused into the layer before it. The description was checked against the checkpoint when it loaded, so a
/// missing tensor here is a programming error.
struct Lowering {
    let tensors: [String: Tensor]

    func tensor(_ key: String) -> [Float] {
        guard let value = tensors[key] else { preconditionFailure("verified checkpoint lacks \(key)") }
        return value.scalars
    }

    func convolution(_ spec: ConvolutionSpec) -> Convolution {
        Convolution(outChannels: spec.outChannels, inChannels: spec.inChannels, kernel: spec.kernel, stride: spec.stride,
                    padding: spec.padding, weight: tensor(spec.key + ".weight"),
                    bias: spec.bias ? tensor(spec.key + ".bias") : [Float](repeating: 0, count: spec.outChannels),
                    groups: spec.groups)
    }

    /// A linear layer at every position as a 1x1 convolution (the weights are the same
    /// numbers whether stored as (out, in) or (out, in, 1, 1)).
    func pointwise(_ spec: LinearSpec) -> Convolution {
        Convolution(outChannels: spec.outFeatures, inChannels: spec.inFeatures, kernel: 1, stride: 1, padding: 0,
                    weight: tensor(spec.key + ".weight"),
                    bias: spec.bias ? tensor(spec.key + ".bias") : [Float](repeating: 0, count: spec.outFeatures))
    }

    func layerNorm(_ spec: LayerNormSpec) -> LayerNormalization {
        LayerNormalization(weight: tensor(spec.key + ".weight"), bias: tensor(spec.key + ".bias"), eps: Float(spec.eps))
    }

    /// Layer scale as an affine map with no shift.
    func layerScale(_ key: String) -> ChannelAffine {
        let gamma = tensor(key)
        return ChannelAffine(scale: gamma, shift: [Float](repeating: 0, count: gamma.count))
    }

    func affine(_ spec: BatchNormSpec) -> ChannelAffine {
        ChannelAffine(weight: tensor(spec.key + ".weight"), bias: tensor(spec.key + ".bias"),
                      runningMean: tensor(spec.key + ".running_mean"), runningVar: tensor(spec.key + ".running_var"),
                      eps: spec.eps)
    }

    /// The layers of a run of operations (stem, pre-activation, branch or shortcut).
    func layers(_ operations: [ModelOperation]) -> [Layer] {
        var layers: [Layer] = []
        var i = 0
        func fusesReLU() -> Bool {
            guard i < operations.count, operations[i] == .relu else { return false }
            i += 1
            return true
        }
        // A batch norm, then a layer scale, right after a convolution fold into it.
        func foldingFollowers(_ conv: Convolution) -> Convolution {
            var conv = conv
            if i < operations.count, case .batchNorm(let norm) = operations[i] {
                conv = conv.folding(affine(norm))
                i += 1
            }
            if i < operations.count, case .layerScale(let key, _) = operations[i] {
                conv = conv.folding(layerScale(key))
                i += 1
            }
            return conv
        }
        while i < operations.count {
            let op = operations[i]
            i += 1
            switch op {
            case .convolution(let spec):
                layers.append(.convolution(foldingFollowers(convolution(spec)), relu: fusesReLU()))
            case .pointwiseLinear(let spec):
                layers.append(.convolution(foldingFollowers(pointwise(spec)), relu: fusesReLU()))
            case .layerScale(let key, _):
                layers.append(.affine(layerScale(key), relu: fusesReLU()))
            case .layerNorm(let spec):
                layers.append(.layerNorm(layerNorm(spec)))
            case .gelu:
                layers.append(.gelu)
            case .batchNorm(let spec):
                layers.append(.affine(affine(spec), relu: fusesReLU()))
            case .relu:
                layers.append(.relu)
            case .maxPool(let k, let s, let p):
                precondition((k, s, p) == (StemPool.kernel, StemPool.stride, StemPool.padding),
                             "the engines run 3x3/2 max pooling with padding 1 only")
                layers.append(.maxPool)
            case .averagePool2x2:
                layers.append(.averagePool2x2)
            case .zeroChannels(let spec):
                layers.append(.zeroChannels(spec))
            case .transformer(let t):
                layers += transformer(t)
                // A layer scale after self-attention folds into its `proj` convolution.
                if case .selfAttention = t, i < operations.count, case .layerScale(let key, _) = operations[i],
                   case .convolution(let proj, let relu) = layers.last {
                    layers[layers.count - 1] = .convolution(proj.folding(layerScale(key)), relu: relu)
                    i += 1
                }
            case .globalAveragePool, .linear:
                preconditionFailure("\(op.summary) belongs in the head")
            }
        }
        return layers
    }

    func block(_ unit: ResidualUnit) -> ResidualBlock {
        precondition(unit.afterAdd.isEmpty || unit.afterAdd == [.relu], "after the add the engines run ReLU only")
        let branch = layers(unit.branch)
        return ResidualBlock(index: unit.block, stage: unit.stage, outChannels: unit.outChannels,
                             preActivation: layers(unit.preActivation), branch: branch, shortcut: layers(unit.shortcut),
                             shortcutReadsPreActivated: unit.shortcutInput == .preActivated,
                             reluAfterAdd: unit.afterAdd == [.relu])
    }

    /// The head: [batch norm, ReLU,] global average pooling, [layer norm,] linear.
    func head(_ operations: [ModelOperation]) -> ClassifierHead {
        if operations.contains(where: { if case .transformer = $0 { return true } else { return false } }),
           case .linear(let linear) = operations.last {
            // A transformer's head: norm and token pooling (or pooling and fc_norm), then the classifier.
            return ClassifierHead(finalNorm: nil, pooledNorm: nil, pooling: layers(Array(operations.dropLast())), weight: tensor(linear.key + ".weight"),
                                  bias: tensor(linear.key + ".bias"), features: linear.inFeatures, classes: linear.outFeatures)
        }
        var ops = operations[...]
        var finalNorm: ChannelAffine?
        if case .batchNorm(let spec) = ops.first {
            precondition(ops.dropFirst().first == .relu, "a head's batch norm is followed by ReLU")
            finalNorm = affine(spec)
            ops = ops.dropFirst(2)
        }
        guard ops.first == .globalAveragePool else { preconditionFailure("the engines run heads that pool globally") }
        ops = ops.dropFirst()
        var pooledNorm: LayerNormalization?
        if case .layerNorm(let spec) = ops.first {
            pooledNorm = layerNorm(spec)
            ops = ops.dropFirst()
        }
        guard ops.count == 1, case .linear(let linear) = ops.first, linear.bias else {
            preconditionFailure("the engines run heads of global average pooling, layer norm and a linear layer with bias")
        }
        return ClassifierHead(finalNorm: finalNorm, pooledNorm: pooledNorm, weight: tensor(linear.key + ".weight"),
                              bias: tensor(linear.key + ".bias"), features: linear.inFeatures, classes: linear.outFeatures)
    }
}
