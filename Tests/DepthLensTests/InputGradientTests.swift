import Foundation
import XCTest
import DepthLens

/// The reference engine's backward pass (`Evaluator.inputGradients`) against PyTorch
/// autograd in float64 (tools/make_gradient_golden.py): the gradient of the cross-entropy
/// of the true label with respect to the image, on the golden networks of both ResNet
/// families, with the gradient routed through every block's branch and shortcut, its
/// branch only, its shortcut only, or a mix (Veit et al. 2016, section 5).
final class InputGradientTests: XCTestCase {
    static let networks = ["official", "port-subsample", "projection", "preact-projection", "preact-input-shortcut",
                           "timm_resnet26d", "timm_resnet18"]

    struct Golden {
        var checkpoint: Checkpoint
        var images: ImageBatch
        var labels: [Int]
        var gates: [Float]
        var cases: [(name: String, routes: [BackwardRoute], gradients: [Float])]
    }

    static func golden(_ name: String) throws -> Golden {
        let root = try HDF5File.open(Fixtures.path("gradients/\(name).gradients.h5")).root
        let checkpoint = try Checkpoint.load(from: Fixtures.path(try root.attribute("checkpoint").string ?? ""))
        let names = (try root.attribute("cases").string ?? "").split(separator: ",").map(String.init)
        let routes = try root.dataset("routes").readIntegers().map { [BackwardRoute.both, .branch, .shortcut][Int($0)] }
        let gradients = try root.dataset("gradients").readFloats()
        let blocks = routes.count / names.count, size = gradients.count / names.count
        let cases = names.enumerated().map { c, name in
            (name, Array(routes[(c * blocks)..<((c + 1) * blocks)]), Array(gradients[(c * size)..<((c + 1) * size)]))
        }
        return Golden(checkpoint: checkpoint, images: try goldenImages(root), labels: try root.dataset("labels").readIntegers().map { Int($0) },
                      gates: try root.dataset("gates").readFloats(), cases: cases)
    }

    /// max |swift - torch| over max |torch|: the error relative to the gradient's scale
    /// (an entry-wise ratio would divide by entries that are zero up to rounding).
    static func relativeDifference(_ actual: [Float], _ expected: [Float]) -> Double {
        let scale = expected.map { abs(Double($0)) }.max() ?? 0
        let worst = zip(actual, expected).map { abs(Double($0) - Double($1)) }.max() ?? 0
        return scale > 0 ? worst / scale : worst
    }

    func testInputGradientsMatchPyTorchAutogradUnderEveryRoutePattern() throws {
        var checked = 0
        for name in Self.networks {
            let golden = try Self.golden(name)
            XCTAssertGreaterThanOrEqual(golden.cases.count, 6, name)
            for threads in [1, 2] {
                let evaluator = Evaluator(network: Network(checkpoint: golden.checkpoint), threads: threads)
                XCTAssertNil(evaluator.backwardRefusal, name)
                let gradients = try evaluator.inputGradients(golden.images, labels: golden.labels, gates: golden.gates,
                                                             routes: golden.cases.map(\.routes))
                for (c, expected) in golden.cases.enumerated() {
                    XCTAssertEqual(gradients[c].shape, [golden.images.count, golden.images.channels, golden.images.height, golden.images.width])
                    let difference = Self.relativeDifference(gradients[c].scalars, expected.gradients)
                    XCTAssertLessThanOrEqual(difference, 1e-4, "\(name)/\(expected.name)/threads \(threads)")
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 2 * 48)
    }

    func testNormsAreTheL2NormsOfTheGradients() throws {
        let golden = try Self.golden("official")
        let evaluator = Evaluator(network: Network(checkpoint: golden.checkpoint), threads: 2)
        let routes = golden.cases.map(\.routes)
        let norms = try evaluator.inputGradientNorms(golden.images, labels: golden.labels, gates: golden.gates, routes: routes)
        let size = golden.images.imageSize
        for (c, expected) in golden.cases.enumerated() {
            for n in 0..<golden.images.count {
                let slice = expected.gradients[(n * size)..<((n + 1) * size)]
                let norm = slice.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                XCTAssertEqual(norms[c][n], norm, accuracy: 1e-4 * max(norm, 1e-12) + 1e-12, "\(expected.name) image \(n)")
            }
        }
    }

    /// The gradient is linear in the routes: branch-only plus shortcut-only through one
    /// block (the others both) is the ordinary gradient, because at each block the two
    /// routes split the same incoming gradient.
    func testBranchAndShortcutRoutesOfOneBlockAddUpToBoth() throws {
        let golden = try Self.golden("preact-projection")
        let evaluator = Evaluator(network: Network(checkpoint: golden.checkpoint), threads: 1)
        let blocks = golden.gates.count
        for l in 0..<blocks {
            var branch = [BackwardRoute](repeating: .both, count: blocks), shortcut = branch
            branch[l] = .branch
            shortcut[l] = .shortcut
            let g = try evaluator.inputGradients(golden.images, labels: golden.labels, gates: golden.gates,
                                                 routes: [[BackwardRoute](repeating: .both, count: blocks), branch, shortcut])
            let sum = zip(g[1].scalars, g[2].scalars).map { $0 + $1 }
            XCTAssertLessThanOrEqual(Self.relativeDifference(sum, g[0].scalars), 1e-5, "block \(l + 1)")
        }
    }

    func testFamiliesWithoutABackwardPassAreRefusedByName() throws {
        let convnext = try Checkpoint.load(from: Fixtures.path("convnext/patch1_linear_ls.safetensors"))
        let evaluator = Evaluator(network: Network(checkpoint: convnext))
        let refusal = try XCTUnwrap(evaluator.backwardRefusal)
        XCTAssertTrue(refusal.contains("timm_convnext"), refusal)
        let batch = ImageBatch(count: 1, channels: convnext.architecture.inChannels, height: 32, width: 32,
                               pixels: [Float](repeating: 0.1, count: convnext.architecture.inChannels * 32 * 32))
        XCTAssertThrowsError(try evaluator.inputGradientNorms(batch, labels: [0], gates: [Float](repeating: 1, count: evaluator.gateCount),
                                                              routes: [[BackwardRoute](repeating: .both, count: evaluator.network.blockCount)])) {
            XCTAssertEqual($0 as? EvaluationError, .unsupported(refusal))
        }
    }

    func testRoutesLabelsAndGatesThatDoNotFitAreRefused() throws {
        let golden = try Self.golden("official")
        let evaluator = Evaluator(network: Network(checkpoint: golden.checkpoint))
        let all = [BackwardRoute](repeating: .both, count: golden.gates.count)
        XCTAssertThrowsError(try evaluator.inputGradientNorms(golden.images, labels: golden.labels, gates: golden.gates, routes: [Array(all.dropLast())]))
        XCTAssertThrowsError(try evaluator.inputGradientNorms(golden.images, labels: [0], gates: golden.gates, routes: [all]))
        XCTAssertThrowsError(try evaluator.inputGradientNorms(golden.images, labels: golden.labels.map { _ in 99 }, gates: golden.gates, routes: [all]))
        XCTAssertThrowsError(try evaluator.inputGradientNorms(golden.images, labels: golden.labels, gates: [1], routes: [all]))
    }
}
