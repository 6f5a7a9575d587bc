import ArgumentParser
import DepthLens
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's architecture, blocks, training metadata and tensors.")

    @Argument(help: "A DepthLens checkpoint (.h5, format v1), or with --arch a plain state_dict dump (.safetensors or HDF5).")
    var checkpoint: String

    @OptionGroup var architecture: ArchitectureOption

    @Flag(help: "Leave out the tensor table.")
    var noTensors = false

    @Flag(help: "Also list the operations of the stem, of every residual unit (pre-activation, branch, shortcut, after the add) and of the head.")
    var operations = false

    func run() throws {
        let ckpt = try architecture.load(checkpoint)
        print(render(ckpt, tensors: !noTensors), terminator: "")
    }

    /// The ResNet families' summary: block kind, shortcuts, stem, stages.
    func renderResNet(_ arch: Architecture) -> String {
        var out = ""
        let padding = switch arch.channelPadding {
        case .end: "at the end"
        case .both: "split between both ends"
        }
        let shortcut: String = switch arch.shortcut {
        case .averagePoolThenPad: "option A (average pooling, zero channels \(padding))"
        case .subsampleThenPad: "option A (strided subsampling, zero channels \(padding))"
        case .projection: arch.averagePoolDownsample ? "option B (2x2 average pooling with the stride, 1x1 convolution + batch norm)"
            : "option B (1x1 convolution + batch norm)"
        }
        let kind: String = switch arch.block {
        case .basic: "basic (post-activation)"
        case .preact: "pre-activation"
        case .bottleneck: "bottleneck (1x1, 3x3, 1x1; expansion \(arch.expansion))"
        }
        out += "Architecture \(arch.family), \(kind) blocks, "
            + "\(arch.blockCount) blocks in \(arch.stages.count) stages\n"
        out += "Shortcuts    \(shortcut)\n"
        let stem = arch.hasDeepStem
            ? "deep stem (3x3 convolutions of width \(arch.stemWidth), \(arch.stemWidth), \(arch.stemOutputWidth)), 3x3/2 max pooling"
            : arch.stemMaxPool ? "7x7/2 stem convolution of width \(arch.stemWidth), 3x3/2 max pooling" : "stem width \(arch.stemWidth)"
        out += "Input        \(arch.inChannels) channel(s); \(stem); \(arch.numClasses) classes\n"
        out += "Convolutions \(arch.convBias ? "with" : "without") bias; batch-norm eps \(arch.bnEps)\n"
        out += "Parameters   \(arch.parameterCount.formatted())\n"
        out += "\nStages\n"
        for (s, stage) in arch.stages.enumerated() {
            let output = arch.expansion == 1 ? "" : " (output \(stage.width * arch.expansion))"
            out += "  stage \(s + 1): \(stage.blocks) blocks, width \(stage.width)\(output), stride \(stage.stride)\n"
        }
        return out
    }

    /// timm ConvNeXt's summary: stem, blocks, stages.
    func renderConvNeXt(_ arch: Architecture, _ c: ConvNeXtSettings) -> String {
        var out = "Architecture \(arch.family) (timm ConvNeXt), \(arch.blockCount) blocks in \(c.depths.count) stages\n"
        out += "Input        \(c.inChannels) channel(s); \(c.patchSize)x\(c.patchSize)/\(c.patchSize) patch stem of width \(c.dims[0]) "
            + "and layer norm; \(c.numClasses) classes\n"
        out += "Blocks       \(c.kernelSize)x\(c.kernelSize) depthwise conv, layer norm, MLP 4x with GELU"
            + "\(c.convMLP ? " (conv_mlp: 1x1-convolution weights)" : ""), \(c.layerScale ? "layer scale, " : "")identity shortcut\n"
        out += "Norms        layer norm, eps \(c.normEps); convolutions \(c.convBias ? "with" : "without") bias\n"
        out += "Parameters   \(arch.parameterCount.formatted())\n"
        out += "\nStages\n"
        for (s, (depth, width)) in zip(c.depths, c.dims).enumerated() {
            let stride = c.stageStrides[s]
            out += "  stage \(s + 1): \(depth) blocks, width \(width)"
                + (stride > 1 ? ", begins with layer norm and 2x2/2 convolution (downsample)\n" : ", no downsampling\n")
        }
        return out
    }

    func render(_ ckpt: Checkpoint, tensors: Bool) -> String {
        let arch = ckpt.architecture
        let model = arch.modelDescription
        var out = "Checkpoint   \(ckpt.path) "
            + (architecture.arch.map { "(plain state_dict dump read as \($0))\n" }
               ?? (SafetensorsFile.isSafetensors(path: ckpt.path) ? "(safetensors, architecture recorded in its metadata)\n"
                   : "(format v\(Checkpoint.formatVersion))\n"))
        if let vit = arch.vit {
            out += visionTransformerOverview(ckpt, vit, model)
        } else {
            out += arch.convNeXt.map { renderConvNeXt(arch, $0) } ?? renderResNet(arch)
            let p = ckpt.training?.survivalProbabilities
            out += "\nBlocks\n"
            let keyWidth = max(14, (model.units.map(\.name.count).max() ?? 0) + 2)
            out += "  " + pad("l", 4) + pad("stage", 7) + pad("key", keyWidth) + pad("channels", 11) + pad("stride", 8) + pad("shortcut", 10)
                + (p != nil ? "p_l" : "") + "\n"
            for unit in model.units {
                out += "  " + pad("\(unit.block)", 4) + pad("\(unit.stage)", 7) + pad(unit.name, keyWidth)
                    + pad("\(unit.inChannels)->\(unit.outChannels)", 11) + pad("\(unit.stride)", 8)
                    + pad(shortcutName(unit), 10) + (p.map { String(format: "%.4f", $0[unit.block - 1]) } ?? "") + "\n"
            }
            if let p {
                out += "  expected number of active blocks: \(String(format: "%.3f", p.reduce(0, +))) of \(p.count)\n"
            }
        }
        out += "\nTraining\n"
        if let t = ckpt.training {
            if let s = t.schedule {
                let params = s.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                out += "  schedule: \(s.name)\(params.isEmpty ? "" : ":" + params)\n"
            }
            if let g = t.gateGranularity { out += "  gates during training: per \(g.rawValue)\n" }
            if let r = t.testTimeRule { out += "  test-time rule: \(r.rawValue)\n" }
            if let n = t.normalization { out += "  normalisation: mean \(n.mean), std \(n.std)\n" }
            if let d = t.dataset { out += "  data set: \(d)\n" }
            if let size = t.inputSize { out += "  input size: \(size[0])x\(size[1])\n" }
            if let names = t.classNames { out += "  classes: \(names.joined(separator: ", "))\n" }
            for (key, value) in t.extras.sorted(by: { $0.key < $1.key }) where key != "history" {
                out += "  \(key): \(value)\n"
            }
        } else {
            out += "  (not recorded)\n"
        }
        if !ckpt.provenance.isEmpty {
            out += "\nProvenance\n"
            for (key, value) in ckpt.provenance.sorted(by: { $0.key < $1.key }) { out += "  \(key): \(value)\n" }
        }
        if operations { out += renderOperations(model) }
        if tensors {
            let table = model.tensors
            out += "\nTensors (\(table.count))\n"
            let width = (table.map(\.key.count).max() ?? 10) + 2
            let shapeWidth = (table.map { shapeText($0.shape).count }.max() ?? 10) + 2
            for tensor in table {
                out += "  " + pad(tensor.key, width) + pad(shapeText(tensor.shape), shapeWidth) + tensor.role.rawValue + "\n"
            }
        }
        return out
    }
}

/// "identity", "option A" (zero channels) or "option B" (a projection), as the paper names them.
func shortcutName(_ unit: ResidualUnit) -> String {
    // ConvNeXt's first block of a stage: identity on the downsampled input.
    if unit.shortcut.isEmpty && !unit.hasIdentityShortcut { return "downsample" }
    guard let first = unit.shortcut.first else { return "identity" }
    if case .zeroChannels = first { return "option A" }
    return "option B"
}

func shapeText(_ shape: [Int]) -> String { "(" + shape.map(String.init).joined(separator: ", ") + ")" }

/// The model description, one line a run of operations.
func renderOperations(_ model: ModelDescription) -> String {
    func line(_ ops: [ModelOperation]) -> String { ops.isEmpty ? "(none)" : ops.map(\.summary).joined(separator: ", ") }
    var out = "\nOperations (\(model.family))\n  stem: \(line(model.stem))\n"
    for unit in model.units {
        out += "  \(unit.block) \(unit.name):"
        if !unit.preActivation.isEmpty { out += " pre \(line(unit.preActivation));" }
        out += " branch \(line(unit.branch)); shortcut "
            + (unit.shortcut.isEmpty ? "identity" : line(unit.shortcut)) + (unit.shortcutInput == .preActivated ? " (of pre)" : "")
        if !unit.afterAdd.isEmpty { out += "; after add \(line(unit.afterAdd))" }
        out += "\n"
    }
    return out + "  head: \(line(model.head))\n"
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
