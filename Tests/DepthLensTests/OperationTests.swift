import Foundation
import XCTest
import DepthLens

/// The operations ConvNeXt and the vision transformers add (layer norm over channels,
/// GELU, grouped and depthwise convolution, pointwise linear, layer scale): each run by
/// the reference kernels on the inputs of tools/make_op_fixtures.py and compared with
/// PyTorch's float64 outputs; and what the model description says about them (tensors,
/// shapes, summaries).
final class OperationTests: XCTestCase {
    struct Case: Decodable {
        struct Stored: Decodable {
            var shape: [Int]
            var values: [Double]
        }

        var name: String
        var op: [String: JSONValue]
        var input_shape: [Int]
        var input: [Double]
        var output_shape: [Int]
        var output: [Double]
        var tensors: [String: Stored]
    }

    /// A JSON scalar of the fixture's operation parameters.
    enum JSONValue: Decodable {
        case number(Double), text(String), flag(Bool)

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .flag(b) } else if let d = try? c.decode(Double.self) {
                self = .number(d)
            } else { self = .text(try c.decode(String.self)) }
        }

        var int: Int { if case .number(let d) = self { return Int(d) } else { return -1 } }
        var double: Double { if case .number(let d) = self { return d } else { return .nan } }
        var bool: Bool { if case .flag(let b) = self { return b } else { return false } }
        var string: String { if case .text(let s) = self { return s } else { return "" } }
    }

    static func cases() throws -> [Case] {
        struct File: Decodable { var cases: [Case] }
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("ops/ops.json")))).cases
    }

    /// The model operation a fixture case describes.
    static func operation(_ op: [String: JSONValue]) -> ModelOperation {
        switch op["kind"]!.string {
        case "layer_norm":
            return .layerNorm(LayerNormSpec(key: op["key"]!.string, channels: op["channels"]!.int, eps: op["eps"]!.double))
        case "gelu":
            return .gelu
        case "convolution":
            return .convolution(ConvolutionSpec(key: op["key"]!.string, inChannels: op["in"]!.int, outChannels: op["out"]!.int,
                                                kernel: op["kernel"]!.int, stride: op["stride"]!.int, padding: op["padding"]!.int,
                                                bias: op["bias"]!.bool, groups: op["groups"]!.int))
        case "pointwise_linear":
            return .pointwiseLinear(LinearSpec(key: op["key"]!.string, inFeatures: op["in"]!.int, outFeatures: op["out"]!.int,
                                               bias: op["bias"]!.bool, convolutionWeight: op["convolution_weight"]!.bool))
        case "layer_scale":
            return .layerScale(key: op["key"]!.string, channels: op["channels"]!.int)
        default:
            preconditionFailure("unknown fixture operation \(op)")
        }
    }

    func testReferenceKernelsMatchPyTorch() throws {
        let cases = try Self.cases()
        XCTAssertEqual(Set(cases.map { $0.op["kind"]!.string }),
                       ["layer_norm", "gelu", "convolution", "pointwise_linear", "layer_scale"])
        for c in cases {
            let op = Self.operation(c.op)
            let s = c.input_shape
            let shape = ActivationShape(channels: s[1], height: s[2], width: s[3])
            let out = try XCTUnwrap(op.outputShape(shape), c.name)
            XCTAssertEqual([s[0], out.channels, out.height, out.width], c.output_shape, c.name)
            // The description names exactly the fixture's tensors, with their shapes.
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: op.tensors.map { ($0.key, $0.shape) }),
                           c.tensors.mapValues(\.shape), c.name)
            let tensors = c.tensors.mapValues { Tensor(shape: $0.shape, scalars: $0.values.map(Float.init)) }
            let input = c.input.map(Float.init)
            var output = [Float](repeating: .nan, count: c.output.count)
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    ReferenceOperations.run(op, tensors: tensors, count: s[0], input: x.baseAddress!, shape: shape,
                                            output: y.baseAddress!, outputCount: out.count)
                }
            }
            let scale = max(1, c.output.map(abs).max() ?? 0)
            let worst = zip(output, c.output).map { abs(Double($0) - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(worst, 2e-5 * scale, "\(c.name): max |difference| \(worst)")
        }
    }

    func testGroupedConvolutionWeightsAndShapes() {
        let depthwise = ModelOperation.convolution(ConvolutionSpec(key: "stages.0.blocks.0.conv_dw", inChannels: 32,
                                                                   outChannels: 32, kernel: 7, bias: true, groups: 32))
        XCTAssertEqual(depthwise.tensors.map(\.shape), [[32, 1, 7, 7], [32]])
        XCTAssertEqual(depthwise.summary, "depthwise conv 7x7 32")
        XCTAssertEqual(depthwise.outputShape(ActivationShape(channels: 32, height: 14, width: 14)),
                       ActivationShape(channels: 32, height: 14, width: 14))
        let grouped = ModelOperation.convolution(ConvolutionSpec(key: "c", inChannels: 6, outChannels: 4, kernel: 3, stride: 2,
                                                                 bias: false, groups: 2))
        XCTAssertEqual(grouped.tensors.map(\.shape), [[4, 3, 3, 3]])
        XCTAssertEqual(grouped.summary, "conv 3x3/2 6->4 in 2 groups")
        // Groups must divide both channel counts.
        let bad = ModelOperation.convolution(ConvolutionSpec(key: "c", inChannels: 6, outChannels: 5, kernel: 3, bias: false, groups: 2))
        XCTAssertNil(bad.outputShape(ActivationShape(channels: 6, height: 5, width: 5)))
        // ResNets' convolutions are unchanged: one group.
        XCTAssertEqual(ConvolutionSpec(key: "conv1", inChannels: 3, outChannels: 8, kernel: 3, bias: false).groups, 1)
    }

    func testLayerNormGELUPointwiseLinearAndLayerScaleDescriptions() {
        let norm = ModelOperation.layerNorm(LayerNormSpec(key: "stem.1", channels: 40))
        XCTAssertEqual(norm.tensors.map(\.key), ["stem.1.weight", "stem.1.bias"])
        XCTAssertEqual(norm.tensors.map(\.role), [.normScale, .normShift])
        XCTAssertEqual(LayerNormSpec(key: "n", channels: 4).eps, 1e-6)
        XCTAssertNil(norm.outputShape(ActivationShape(channels: 39, height: 2, width: 2)))
        XCTAssertEqual(norm.summary, "layer norm 40")

        XCTAssertEqual(ModelOperation.gelu.tensors.count, 0)
        XCTAssertEqual(ModelOperation.gelu.outputShape(ActivationShape(channels: 3, height: 1, width: 7)),
                       ActivationShape(channels: 3, height: 1, width: 7))

        let fc1 = ModelOperation.pointwiseLinear(LinearSpec(key: "mlp.fc1", inFeatures: 40, outFeatures: 160))
        XCTAssertEqual(fc1.tensors.map(\.shape), [[160, 40], [160]])
        XCTAssertEqual(fc1.tensors.map(\.role), [.linearWeight, .linearBias])
        XCTAssertEqual(fc1.outputShape(ActivationShape(channels: 40, height: 7, width: 7)),
                       ActivationShape(channels: 160, height: 7, width: 7))
        XCTAssertEqual(fc1.summary, "pointwise linear 40->160")
        let convMlp = ModelOperation.pointwiseLinear(LinearSpec(key: "mlp.fc2", inFeatures: 160, outFeatures: 40,
                                                                convolutionWeight: true))
        XCTAssertEqual(convMlp.tensors.map(\.shape), [[40, 160, 1, 1], [40]])
        let noBias = ModelOperation.pointwiseLinear(LinearSpec(key: "qkv", inFeatures: 8, outFeatures: 24, bias: false))
        XCTAssertEqual(noBias.tensors.map(\.key), ["qkv.weight"])

        let gamma = ModelOperation.layerScale(key: "stages.1.blocks.0.gamma", channels: 80)
        XCTAssertEqual(gamma.tensors, [TensorDescription(key: "stages.1.blocks.0.gamma", shape: [80], role: .layerScale)])
        XCTAssertTrue(TensorRole.layerScale.isLearned)
        XCTAssertNil(gamma.outputShape(ActivationShape(channels: 40, height: 1, width: 1)))
        XCTAssertEqual(gamma.summary, "layer scale 80")
    }
}
