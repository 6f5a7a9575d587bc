import DepthLens
import XCTest

/// The model description is the one place a family's layout is written: these tests pin
/// what it says for each kind of ResNet, against the PyTorch modules' own structure and
/// parameter counts.
final class ModelDescriptionTests: XCTestCase {
    private func imageNet(_ block: Architecture.BlockKind, _ depths: [Int], classes: Int = 1000,
                          stem: Architecture.StemKind? = nil, downsample: Architecture.DownsampleKind? = nil) -> Architecture {
        let widths = [64, 128, 256, 512]
        return Architecture(family: Architecture.imageNetFamily, block: block, inChannels: 3, numClasses: classes,
                            stemWidth: stem == .deep ? 32 : 64,
                            stages: zip(depths, widths).enumerated().map { .init(blocks: $1.0, width: $1.1, stride: $0 == 0 ? 1 : 2) },
                            shortcut: .projection, convBias: false, stem: stem, downsample: downsample)
    }

    func testParameterCountsEqualTorchvisionAndTimm() {
        // sum(p.numel() for p in model.parameters()) of torchvision's and timm's models.
        XCTAssertEqual(imageNet(.basic, [2, 2, 2, 2]).parameterCount, 11_689_512)       // resnet18
        XCTAssertEqual(imageNet(.bottleneck, [3, 4, 6, 3]).parameterCount, 25_557_032)  // resnet50
        XCTAssertEqual(imageNet(.bottleneck, [3, 4, 6, 3], stem: .deep, downsample: .avg).parameterCount, 25_576_264)  // resnet50d
    }

    func testABasicBlockIsConvNormReLUConvNormWithReLUAfterTheAdd() {
        let arch = Architecture(inChannels: 1, numClasses: 10, stemWidth: 16,
                                stages: [.init(blocks: 1, width: 16, stride: 1), .init(blocks: 1, width: 32, stride: 2)])
        let units = arch.modelDescription.units
        XCTAssertEqual(units.map(\.name), ["layer1.0", "layer2.0"])
        XCTAssertEqual(units[0].branch.map(\.summary),
                       ["conv 3x3 16->16", "batch norm 16", "relu", "conv 3x3 16->16", "batch norm 16"])
        XCTAssertTrue(units[0].hasIdentityShortcut)
        XCTAssertEqual(units[0].afterAdd, [.relu])
        // Option A by average pooling (the paper's code): zeros appended after the 16 channels.
        XCTAssertEqual(units[1].shortcut, [.zeroChannels(ZeroChannelsSpec(averagePool: true, stride: 2, before: 0, after: 16))])
    }

    func testAPreActivationProjectionReadsThePreActivatedInput() {
        let arch = Architecture(block: .preact, inChannels: 3, numClasses: 10, stemWidth: 8,
                                stages: [.init(blocks: 1, width: 8, stride: 1), .init(blocks: 1, width: 16, stride: 2)],
                                shortcut: .projection)
        let model = arch.modelDescription
        XCTAssertEqual(model.stem.map(\.summary), ["conv 3x3 3->8"], "pre-activation stems end in the convolution")
        let projection = model.units[1]
        XCTAssertEqual(projection.preActivation.map(\.summary), ["batch norm 8", "relu"])
        XCTAssertEqual(projection.shortcutInput, .preActivated)
        XCTAssertEqual(projection.shortcut.map(\.summary), ["conv 1x1/2 8->16", "batch norm 16"])
        XCTAssertEqual(projection.afterAdd, [])
        XCTAssertEqual(model.head.map(\.summary), ["batch norm 16", "relu", "global avg pool", "linear 16->10"])
    }

    func testTimmAverageDownsamplingPoolsThenConvolvesWithStrideOne() {
        let model = imageNet(.bottleneck, [1, 1, 1, 1], stem: .deep, downsample: .avg).modelDescription
        XCTAssertEqual(model.stem.map(\.summary), ["conv 3x3/2 3->32", "batch norm 32", "relu", "conv 3x3 32->32", "batch norm 32",
                                                   "relu", "conv 3x3 32->64", "batch norm 64", "relu", "max pool 3x3/2"])
        XCTAssertEqual(model.units[0].shortcut.map(\.summary), ["conv 1x1 64->256", "batch norm 256"], "stride 1: no pooling")
        XCTAssertEqual(model.units[1].shortcut.map(\.summary), ["avg pool 2x2/2", "conv 1x1 256->512", "batch norm 512"])
        XCTAssertEqual(model.units[1].shortcut.flatMap(\.tensors).map(\.key).first, "layer2.0.downsample.1.weight")
    }

    func testTensorsFollowForwardOrderWithTheirRoles() {
        let arch = Architecture(inChannels: 1, numClasses: 3, stemWidth: 4, stages: [.init(blocks: 1, width: 4, stride: 1)],
                                convBias: false)
        let tensors = arch.modelDescription.tensors
        XCTAssertEqual(tensors.map(\.key), [
            "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
            "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean",
            "layer1.0.bn1.running_var", "layer1.0.conv2.weight", "layer1.0.bn2.weight", "layer1.0.bn2.bias",
            "layer1.0.bn2.running_mean", "layer1.0.bn2.running_var", "fc.weight", "fc.bias",
        ])
        XCTAssertEqual(tensors.first?.shape, [4, 1, 3, 3])
        XCTAssertEqual(tensors.map(\.role).filter { !$0.isLearned }.count, 6)
        XCTAssertEqual(tensors.last?.role, .linearBias)
        XCTAssertEqual(arch.expectedTensors.map(\.key), tensors.map(\.key))
    }

    func testShapesFlowThroughEveryUnitAndBadSizesNameTheBlock() throws {
        let arch = Architecture(inChannels: 1, numClasses: 10, stemWidth: 16,
                                stages: [.init(blocks: 2, width: 16, stride: 1), .init(blocks: 1, width: 32, stride: 2),
                                         .init(blocks: 1, width: 64, stride: 2)])
        let model = arch.modelDescription
        let shapes = try model.activationShapes(height: 28, width: 28)
        XCTAssertEqual(shapes.map(\.channels), [16, 16, 16, 32, 64])
        XCTAssertEqual(shapes.map(\.height), [28, 28, 28, 14, 7])
        XCTAssertThrowsError(try model.activationShapes(height: 30, width: 30)) { error in
            // 30 -> 15 cannot be average-pooled by 2 again: block 4 says so.
            XCTAssertTrue("\(error)".hasPrefix("block 4 (layer3.0): its average-pool shortcut with stride 2"), "\(error)")
        }
    }
}
