/// A survival schedule: the probability p_l that block l is kept, for every block.
///
/// Implement this (and describe it with a ``ScheduleDescriptor``) to add a schedule. The
/// core applies the generic options every schedule gets (`only=identity`,
/// `per_stage=true`) around your implementation, and validates what it returns.
public protocol SurvivalSchedule: Sendable {
    /// p_l for each block of `blocks`, in order. The list is numbered 1...blocks.count in
    /// forward order: the whole network, or one stage when the schedule is applied per
    /// stage. Each value must lie in [0, 1].
    func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double]
}

/// Where a plugin comes from, for `depthlens plugins`.
public enum PluginOrigin: Sendable, Equatable, CustomStringConvertible {
    /// Shipped with DepthLens.
    case builtIn
    /// Compiled into this executable by a package that depends on DepthLens.
    case linked(String)
    /// Loaded at run time from a shared library.
    case loaded(path: String)

    public var description: String {
        switch self {
        case .builtIn: return "built in"
        case .linked(let module): return "linked (\(module))"
        case .loaded(let path): return "loaded from \(path)"
        }
    }
}

/// Names a schedule, documents it, and makes it from its arguments.
public struct ScheduleDescriptor: Sendable {
    public var name: String
    /// One line for `depthlens plugins`.
    public var summary: String
    public var parameters: [PluginParameter]
    public var origin: PluginOrigin
    public var make: @Sendable (PluginArguments) throws -> any SurvivalSchedule

    public init(name: String, summary: String, parameters: [PluginParameter] = [], origin: PluginOrigin = .linked("user"),
                make: @escaping @Sendable (PluginArguments) throws -> any SurvivalSchedule) {
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.origin = origin
        self.make = make
    }
}

/// Options every schedule accepts, handled by the core.
public enum ScheduleOptions {
    public static let parameters: [PluginParameter] = [
        PluginParameter("only", .text, default: "all",
                        help: "all, or identity: blocks whose shortcut is not the identity (downsampling blocks) keep p=1, as EfficientNet applies drop path"),
        PluginParameter("per_stage", .boolean, default: "false",
                        help: "apply the schedule within each stage, numbering its blocks 1...L_s"),
    ]
}
