import DepthLens

/// `inspect`'s overview of a vision transformer: its sizes, then every block with its two
/// residual branches (the units a gate vector addresses with `--unit branch`).
func visionTransformerOverview(_ ckpt: Checkpoint, _ vit: VisionTransformerSpec, _ model: ModelDescription) -> String {
    let arch = ckpt.architecture
    let pooling = vit.globalPool == .token ? "class token" : (vit.classToken ? "mean of the patch tokens (class token left out)" : "mean of the tokens")
    var out = "Architecture \(arch.family) (timm VisionTransformer), \(vit.depth) blocks of 2 residual branches (attention, MLP)\n"
    out += "Input        \(arch.inChannels) channel(s), \(vit.imageSize[0])x\(vit.imageSize[1]); \(vit.patchSize)x\(vit.patchSize) patches: "
        + "\(vit.grid.height * vit.grid.width) tokens\(vit.classToken ? " + class token" : ""); \(arch.numClasses) classes\n"
    out += "Blocks       width \(vit.embedDim), \(vit.numHeads) heads of \(vit.embedDim / vit.numHeads), MLP \(vit.mlpHidden), "
        + "qkv \(vit.qkvBias ? "with" : "without") bias, layer scale \(vit.layerScale ? "on" : "off"); layer-norm eps \(vit.normEps)\n"
    out += "Head         \(vit.fcNorm ? "\(pooling), then fc_norm" : "norm, then \(pooling)"), linear\n"
    out += "Parameters   \(arch.parameterCount.formatted())\n"
    let p = ckpt.training?.survivalProbabilities
    out += "\nBlocks (gate numbers: --unit block, --unit branch)\n"
    out += "  " + pad("l", 4) + pad("key", 12) + pad("branch", 8) + pad("gate", 6) + pad("operations", 52) + (p != nil ? "p_l" : "") + "\n"
    for (u, unit) in model.units.enumerated() {
        let ops = unit.branch.map(\.summary).joined(separator: ", ")
        out += "  " + pad(u % 2 == 0 ? "\(unit.block)" : "", 4) + pad(u % 2 == 0 ? unit.name : "", 12) + pad(unit.branchName, 8)
            + pad("\(u + 1)", 6) + pad(ops, 52) + (p.map { String(format: "%.4f", $0[unit.block - 1]) } ?? "") + "\n"
    }
    if let p {
        out += "  expected number of active branches: \(String(format: "%.3f", 2 * p.reduce(0, +))) of \(2 * p.count) (each branch drawn at its block's rate)\n"
    }
    return out
}
