import DepthLensPluginAPI

/// p_l = p for every block: the paper's "uniform" mode, DeiT-III.
struct ConstantSchedule: SurvivalSchedule {
    let p: Double

    static let descriptor = ScheduleDescriptor(
        name: "constant", summary: "p_l = p for every block (the paper's uniform mode)",
        parameters: [PluginParameter("p", .number, default: "0.5", help: "survival probability of every block")],
        origin: .builtIn
    ) { arguments in ConstantSchedule(p: try arguments.number("p", in: 0...1)) }

    func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
        blocks.map { _ in p }
    }
}

/// The paper's linear decay: p_l = 1 - (l / L)(1 - p_L). The first block already drops a
/// little; the last drops exactly 1 - p_L (official Lua code, `lin_decay`).
struct LinearSchedule: SurvivalSchedule {
    let pL: Double

    static let descriptor = ScheduleDescriptor(
        name: "linear", summary: "p_l = 1 - (l/L)(1 - pL), the paper's linear decay (Huang et al. 2016)",
        parameters: [PluginParameter("pL", .number, default: "0.5", help: "survival probability of the last block")],
        origin: .builtIn
    ) { arguments in LinearSchedule(pL: try arguments.number("pL", in: 0...1)) }

    func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
        let count = Double(blocks.count)
        return blocks.indices.map { 1 - (Double($0 + 1) / count) * (1 - pL) }
    }
}

/// Linear from zero, as timm (`linspace(0, r, L)`), torchvision ConvNeXt and Swin, and
/// mmpretrain: drop_l = r (l - 1) / (L - 1); the first block never drops, the last drops r.
struct LinearFromZeroSchedule: SurvivalSchedule {
    let r: Double

    static let descriptor = ScheduleDescriptor(
        name: "linear-from-zero", summary: "drop_l = r (l-1)/(L-1), timm's drop_path_rate and torchvision ConvNeXt/Swin",
        parameters: [PluginParameter("r", .number, default: "0.1", help: "drop rate of the last block")],
        origin: .builtIn
    ) { arguments in LinearFromZeroSchedule(r: try arguments.number("r", in: 0...1)) }

    func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
        // One block: linspace(0, r, 1) is [0], so it never drops.
        guard blocks.count > 1 else { return blocks.map { _ in 1 } }
        let span = Double(blocks.count - 1)
        return blocks.indices.map { 1 - r * Double($0) / span }
    }
}

/// Linear as in torchvision's and timm's EfficientNet: drop_l = r (l - 1) / L, so the
/// last block drops less than r.
struct LinearEfficientNetSchedule: SurvivalSchedule {
    let r: Double

    static let descriptor = ScheduleDescriptor(
        name: "linear-efficientnet", summary: "drop_l = r (l-1)/L, EfficientNet's stochastic depth (combine with only=identity)",
        parameters: [PluginParameter("r", .number, default: "0.2", help: "the drop-rate scale (EfficientNet's drop_connect_rate)")],
        origin: .builtIn
    ) { arguments in LinearEfficientNetSchedule(r: try arguments.number("r", in: 0...1)) }

    func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
        let count = Double(blocks.count)
        return blocks.indices.map { 1 - r * Double($0) / count }
    }
}
