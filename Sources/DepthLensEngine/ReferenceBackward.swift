import DepthLensFormats
import DepthLensModel
import Foundation

/// The backward pass of the reference engine for one image: a forward pass that keeps
/// every layer's input (a tape), then the gradient of the cross-entropy of the true label
/// walked back to the image, crossing each residual block as its ``BackwardRoute`` says.
///
/// The forward pass is the whole network under the given gates (the deterministic network
/// of the checkpoint's test-time rule: a gate p_l under the expectation rule scales the
/// branch, and so its gradient); only the backward pass is routed. One tape serves any
/// number of routes, so that Veit et al.'s sampled paths cost one forward pass per image.
struct ReferenceBackward {
    let network: Network

    /// The forward values one run of layers needs for its backward pass.
    struct LayerTape {
        /// The input of each layer, then the run's output (layers.count + 1 arrays).
        var values: [[Float]]
        /// The input shape of each layer, then the output shape.
        var shapes: [ActivationShape]
        var output: [Float] { values[values.count - 1] }
        var outputShape: ActivationShape { shapes[shapes.count - 1] }
    }

    /// One block's forward values: out = relu?(shortcut(s) + g * branch(pre(x))).
    struct BlockTape {
        var inputShape: ActivationShape
        var pre: LayerTape
        var branch: LayerTape
        var shortcut: LayerTape
        var gate: Float
        /// The block's output (after the ReLU of a post-activation block).
        var output: [Float]
    }

    /// The tape of one image: the stem, every block in running order, the head's input.
    struct Tape {
        var stem: LayerTape
        var blocks: [BlockTape]
        /// The head's batch norm and ReLU output (pre-activation networks), or the last
        /// block's output.
        var headInput: [Float]
        var headShape: ActivationShape
        var logits: [Float]
    }

    /// Why this network has no backward pass here, or nil: every layer must have a backward
    /// kernel (``BackwardKernels/unsupported(_:)``) and the head must be the ResNets'
    /// (optional batch norm and ReLU, global average pooling, linear).
    static func refusal(_ network: Network) -> String? {
        let layers = network.stemLayers + network.blocks.flatMap { $0.preActivation + $0.branch + $0.shortcut } + network.head.pooling
        let missing = layers.compactMap(BackwardKernels.unsupported)
            + (network.head.pooledNorm != nil ? ["layer norm"] : [])
        guard let first = missing.first else { return nil }
        return "the backward pass (input gradients) runs the ResNet families only; \(network.model.family) uses \(first), which it does not differentiate yet"
    }

    static func run(_ layers: [Layer], input: [Float], shape: ActivationShape) -> LayerTape {
        var tape = LayerTape(values: [input], shapes: [shape])
        var current = input, shape = shape
        for layer in layers {
            let outShape = layer.outputShape(shape)
            var out = [Float](repeating: 0, count: outShape.count)
            current.withUnsafeBufferPointer { i in
                out.withUnsafeMutableBufferPointer { o in Kernels.run(layer, input: i.baseAddress!, shape: shape, output: o.baseAddress!) }
            }
            tape.values.append(out)
            tape.shapes.append(outShape)
            (current, shape) = (out, outShape)
        }
        return tape
    }

    /// The gradient at the input of a run of layers from the gradient at its output.
    static func backward(_ layers: [Layer], _ tape: LayerTape, gradient: [Float]) -> [Float] {
        var g = gradient
        for i in layers.indices.reversed() {
            g = BackwardKernels.inputGradient(layers[i], input: tape.values[i], output: tape.values[i + 1], shape: tape.shapes[i], gradient: g)
        }
        return g
    }

    /// The forward pass of one image (CHW) under one gate per block, keeping the tape.
    func forward(_ image: [Float], height: Int, width: Int, gates: [Float]) -> Tape {
        let stem = Self.run(network.stemLayers, input: image,
                            shape: ActivationShape(channels: network.model.inputChannels, height: height, width: width))
        var x = stem.output, shape = stem.outputShape
        var blocks: [BlockTape] = []
        for (l, block) in network.blocks.enumerated() {
            let pre = Self.run(block.preActivation, input: x, shape: shape)
            let shortcutTape = block.shortcutReadsPreActivated ? Self.run(block.shortcut, input: pre.output, shape: pre.outputShape)
                : Self.run(block.shortcut, input: x, shape: shape)
            let branch = Self.run(block.branch, input: pre.output, shape: pre.outputShape)
            var out = shortcutTape.output
            let g = gates[l]
            if g != 0 { for i in out.indices { out[i] += g * branch.output[i] } }
            if block.reluAfterAdd { for i in out.indices where out[i] < 0 { out[i] = 0 } }
            blocks.append(BlockTape(inputShape: shape, pre: pre, branch: branch, shortcut: shortcutTape, gate: g, output: out))
            (x, shape) = (out, shortcutTape.outputShape)
        }
        let head = network.head
        if let norm = head.finalNorm {
            x.withUnsafeMutableBufferPointer { Kernels.affine(norm, input: $0.baseAddress!, planeSize: shape.height * shape.width, output: $0.baseAddress!, relu: true) }
        }
        let plane = shape.height * shape.width
        let features = (0..<shape.channels).map { c in x[(c * plane)..<((c + 1) * plane)].reduce(0, +) / Float(plane) }
        let logits = (0..<head.classes).map { k in
            (0..<shape.channels).reduce(head.bias[k]) { $0 + head.weight[k * shape.channels + $1] * features[$1] }
        }
        return Tape(stem: stem, blocks: blocks, headInput: x, headShape: shape, logits: logits)
    }

    /// dL/d(image) for L = -log softmax(logits)[label], each block crossed by `routes[l]`.
    func inputGradient(_ tape: Tape, label: Int, routes: [BackwardRoute]) -> [Float] {
        let head = network.head
        let shape = tape.headShape, plane = shape.height * shape.width
        // Softmax minus the one-hot label, in double so that a confident logit does not round to 0.
        let top = Double(tape.logits.max() ?? 0)
        let exps = tape.logits.map { exp(Double($0) - top) }
        let total = exps.reduce(0, +)
        let dLogits = exps.enumerated().map { k, e in Float(e / total - (k == label ? 1 : 0)) }
        var g = [Float](repeating: 0, count: shape.count)
        for c in 0..<shape.channels {
            var dFeature: Float = 0
            for k in 0..<head.classes { dFeature += head.weight[k * shape.channels + c] * dLogits[k] }
            let share = dFeature / Float(plane)
            for i in (c * plane)..<((c + 1) * plane) { g[i] = share }
        }
        if let norm = head.finalNorm {
            for c in 0..<shape.channels {
                for i in (c * plane)..<((c + 1) * plane) { g[i] = tape.headInput[i] > 0 ? g[i] * norm.scale[c] : 0 }
            }
        }
        for (l, block) in network.blocks.enumerated().reversed() {
            g = Self.blockBackward(block, tape.blocks[l], route: routes[l], gradient: g)
        }
        return Self.backward(network.stemLayers, tape.stem, gradient: g)
    }

    /// The gradient at a block's input from the gradient at its output: through the ReLU
    /// after the add, then through the branch (times the gate), the shortcut, or both, and
    /// the pre-activation wherever they read it.
    static func blockBackward(_ block: ResidualBlock, _ tape: BlockTape, route: BackwardRoute, gradient: [Float]) -> [Float] {
        let dSum = block.reluAfterAdd ? BackwardKernels.masked(gradient, by: tape.output) : gradient
        var dInput = [Float](repeating: 0, count: tape.inputShape.count)
        var dActivated = [Float](repeating: 0, count: tape.pre.outputShape.count)
        var reachesActivated = false
        if route != .branch {
            let d = backward(block.shortcut, tape.shortcut, gradient: dSum)
            if block.shortcutReadsPreActivated {
                add(d, into: &dActivated)
                reachesActivated = true
            } else {
                add(d, into: &dInput)
            }
        }
        if route != .shortcut, tape.gate != 0 {
            add(backward(block.branch, tape.branch, gradient: dSum.map { $0 * tape.gate }), into: &dActivated)
            reachesActivated = true
        }
        if reachesActivated { add(backward(block.preActivation, tape.pre, gradient: dActivated), into: &dInput) }
        return dInput
    }

    static func add(_ x: [Float], into y: inout [Float]) {
        for i in y.indices { y[i] += x[i] }
    }
}
