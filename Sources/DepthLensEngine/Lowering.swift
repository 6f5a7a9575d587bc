import DepthLensFormats
import DepthLensModel

/// Turns a ``ModelDescription``'s operations into evaluation ``Layer``s: each batch norm
/// that follows a convolution is folded into it, and each ReLU fused into the layer
/// before it. The description was checked against the checkpoint when it loaded, so a
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
                    bias: spec.bias ? tensor(spec.key + ".bias") : [Float](repeating: 0, count: spec.outChannels))
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
        while i < operations.count {
            let op = operations[i]
            i += 1
            switch op {
            case .convolution(let spec):
                var conv = convolution(spec)
                if i < operations.count, case .batchNorm(let norm) = operations[i] {
                    conv = conv.folding(affine(norm))
                    i += 1
                }
                layers.append(.convolution(conv, relu: fusesReLU()))
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

    /// The head: [batch norm, ReLU,] global average pooling, linear.
    func head(_ operations: [ModelOperation]) -> ClassifierHead {
        if operations.contains(where: { if case .transformer = $0 { return true } else { return false } }),
           case .linear(let linear) = operations.last {
            // A transformer's head: norm and token pooling (or pooling and fc_norm), then the classifier.
            return ClassifierHead(finalNorm: nil, pooling: layers(Array(operations.dropLast())), weight: tensor(linear.key + ".weight"),
                                  bias: tensor(linear.key + ".bias"), features: linear.inFeatures, classes: linear.outFeatures)
        }
        var ops = operations[...]
        var finalNorm: ChannelAffine?
        if case .batchNorm(let spec) = ops.first {
            precondition(ops.dropFirst().first == .relu, "a head's batch norm is followed by ReLU")
            finalNorm = affine(spec)
            ops = ops.dropFirst(2)
        }
        guard ops.count == 2, ops.first == .globalAveragePool, case .linear(let linear) = ops.last else {
            preconditionFailure("the engines run heads of global average pooling and a linear layer")
        }
        return ClassifierHead(finalNorm: finalNorm, weight: tensor(linear.key + ".weight"), bias: tensor(linear.key + ".bias"),
                              features: linear.inFeatures, classes: linear.outFeatures)
    }
}
