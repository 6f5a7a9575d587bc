import DepthLensFormats
import DepthLensModel
import Dispatch
import Foundation

/// How the backward pass crosses one residual block (Veit et al. 2016, section 5): the
/// forward pass always runs the whole block; the gradient then flows back through its
/// residual branch, its shortcut (identity, zero channels or projection), or both.
public enum BackwardRoute: String, Sendable, CaseIterable {
    /// The ordinary gradient: branch and shortcut.
    case both
    /// Through the residual branch only (scaled by the block's gate): the block is on the path.
    case branch
    /// Through the shortcut only: the path skips the block.
    case shortcut
}

extension Evaluator {
    /// Why this network has no backward pass, or nil when it has one. The reference
    /// engine differentiates the ResNet families' layers (convolution, folded batch norm,
    /// ReLU, max and average pooling, option A's zero channels, global average pooling,
    /// linear); layer norm, GELU and attention (ConvNeXt, vision transformers) not yet.
    public var backwardRefusal: String? { ReferenceBackward.refusal(network) }

    /// The gradient of the cross-entropy loss of each image's label, -log softmax(logits)[y],
    /// with respect to the image (the network's input, after normalisation), for each
    /// pattern of routes. Always computed on the reference engine, in float32.
    ///
    /// - Parameters:
    ///   - labels: one per image.
    ///   - gates: the forward pass's gates, one per gate entry (``gateCount``): the
    ///     deterministic network under the checkpoint's rule for Veit's measure.
    ///   - routes: patterns of one ``BackwardRoute`` per block (``Network/blockCount``).
    /// - Returns: one tensor (N, C, H, W) per pattern.
    /// - Throws: ``EvaluationError`` when the images, labels, gates or routes do not fit
    ///   the network or it has no backward pass (``backwardRefusal``).
    public func inputGradients(_ batch: ImageBatch, labels: [Int], gates: [Float], routes: [[BackwardRoute]]) throws -> [Tensor] {
        let out = LockedResults(routes.map { _ in [Float](repeating: 0, count: batch.count * batch.imageSize) })
        let size = batch.imageSize
        try backward(batch, labels: labels, gates: gates, routes: routes) { image, pattern, gradient in
            out.update { $0[pattern].replaceSubrange((image * size)..<((image + 1) * size), with: gradient) }
        }
        return out.values.map { Tensor(shape: [batch.count, batch.channels, batch.height, batch.width], scalars: $0) }
    }

    /// The L2 norm of each image's input gradient (``inputGradients(_:labels:gates:routes:)``)
    /// for each pattern: `result[pattern][image]`, without keeping the gradients.
    public func inputGradientNorms(_ batch: ImageBatch, labels: [Int], gates: [Float], routes: [[BackwardRoute]]) throws -> [[Double]] {
        let out = LockedResults(routes.map { _ in [Double](repeating: 0, count: batch.count) })
        try backward(batch, labels: labels, gates: gates, routes: routes) { image, pattern, gradient in
            let norm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            out.update { $0[pattern][image] = norm }
        }
        return out.values
    }

    /// One forward pass per image (its tape), then one backward pass per pattern, images
    /// spread over the threads; `body(image, pattern, gradient)` is called concurrently.
    private func backward(_ batch: ImageBatch, labels: [Int], gates: [Float], routes: [[BackwardRoute]],
                          body: @escaping @Sendable (Int, Int, [Float]) -> Void) throws {
        if let refusal = backwardRefusal { throw EvaluationError.unsupported(refusal) }
        guard batch.channels == network.architecture.inChannels else {
            throw EvaluationError.inputSize("images have \(batch.channels) channel(s), the network takes \(network.architecture.inChannels)")
        }
        _ = try network.activationShapes(height: batch.height, width: batch.width)
        try Gates.shared(gates).validate(blockCount: gateCount, count: batch.count)
        guard labels.count == batch.count else {
            throw EvaluationError.gates("\(labels.count) labels for a batch of \(batch.count) images")
        }
        let classes = network.architecture.numClasses
        if let bad = labels.firstIndex(where: { !(0..<classes).contains($0) }) {
            throw EvaluationError.gates("label \(labels[bad]) of image \(bad) is outside 0...\(classes - 1)")
        }
        if let bad = routes.firstIndex(where: { $0.count != network.blockCount }) {
            throw EvaluationError.gates("route pattern \(bad) has \(routes[bad].count) entries but the network has \(network.blockCount) blocks")
        }
        guard batch.count > 0 else { return }
        let perUnit: [Float]
        if case .shared(let expanded) = Gates.shared(gates).expanded(network.gateIndex(unit)) { perUnit = expanded } else { perUnit = gates }
        let pass = ReferenceBackward(network: network)
        let workers = min(threads, batch.count)
        let pixels = batch.pixels, size = batch.imageSize, (h, w) = (batch.height, batch.width)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for n in slice(worker, of: workers, count: batch.count) {
                let tape = pass.forward(Array(pixels[(n * size)..<((n + 1) * size)]), height: h, width: w, gates: perUnit)
                for (p, pattern) in routes.enumerated() {
                    body(n, p, pass.inputGradient(tape, label: labels[n], routes: pattern))
                }
            }
        }
    }
}

/// Results the workers of a backward pass fill in, each its own entries, under a lock.
private final class LockedResults<Value>: @unchecked Sendable {
    private(set) var values: Value
    private let lock = NSLock()

    init(_ values: Value) { self.values = values }

    func update(_ body: (inout Value) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        body(&values)
    }
}
