import DepthLensModel

/// One model-description operation on one image with the plain reference kernels, for
/// code outside the engines that interprets a description itself (batch-norm
/// recalibration runs the network in train mode, batch statistics and all).
package enum ReferenceOperations {
    /// Runs `operation` on `count` CHW images of `shape` from `input` into `output` (each
    /// image's output of `outputCount` values), reading its weights from `tensors` once.
    /// Batch norm and the head's operations are not per-image kernels here: batch norm in
    /// train mode needs the whole batch. Layer norm is (its statistics are per position).
    package static func run(_ operation: ModelOperation, tensors: [String: Tensor], count: Int, input: UnsafePointer<Float>,
                            shape: ActivationShape, output: UnsafeMutablePointer<Float>, outputCount: Int) {
        let layer: Layer
        switch operation {
        case .convolution(let spec): layer = .convolution(Lowering(tensors: tensors).convolution(spec), relu: false)
        case .pointwiseLinear(let spec): layer = .convolution(Lowering(tensors: tensors).pointwise(spec), relu: false)
        case .layerNorm(let spec): layer = .layerNorm(Lowering(tensors: tensors).layerNorm(spec))
        case .layerScale(let key, _): layer = .affine(Lowering(tensors: tensors).layerScale(key), relu: false)
        case .gelu: layer = .gelu
        case .relu: layer = .relu
        case .maxPool: layer = .maxPool
        case .averagePool2x2: layer = .averagePool2x2
        case .zeroChannels(let z): layer = .zeroChannels(z)
        case .transformer: preconditionFailure("recalibration refuses networks without batch norm before running")
        case .batchNorm, .globalAveragePool, .linear: preconditionFailure("\(operation.summary) is not a per-image kernel here")
        }
        for i in 0..<count {
            Kernels.run(layer, input: input + i * shape.count, shape: shape, output: output + i * outputCount)
        }
    }
}
