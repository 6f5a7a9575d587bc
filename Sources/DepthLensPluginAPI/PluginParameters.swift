import Foundation

/// A parameter a plugin declares: its name, type, default and meaning. Declared
/// parameters are how `depthlens plugins` documents a plugin and how unknown or
/// mistyped arguments are caught before any computation.
public struct PluginParameter: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case number, integer, boolean, text, numbers, path
    }

    public var name: String
    public var kind: Kind
    /// The default as written on the command line; nil when the parameter is required.
    public var defaultValue: String?
    public var help: String

    public init(_ name: String, _ kind: Kind, default defaultValue: String? = nil, help: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
    }

    /// `name=<kind>` or `name=<kind> (default D)`, for help texts.
    public var synopsis: String {
        "\(name)=<\(kind.rawValue)>" + (defaultValue.map { " (default \($0))" } ?? " (required)")
    }
}

/// The arguments of one spec, checked against the plugin's declared parameters.
public struct PluginArguments: Sendable {
    public let spec: String
    /// Every argument, defaults filled in, by parameter name.
    public let values: [String: String]
    private let declared: [String: PluginParameter]

    /// Checks that every argument is declared and every required parameter given.
    public init(spec: PluginSpec, parameters: [PluginParameter]) throws {
        self.spec = spec.description
        declared = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0) })
        for (key, _) in spec.arguments where declared[key] == nil {
            let known = parameters.map(\.name).joined(separator: ", ")
            throw PluginError(spec: spec.description, message: "unknown parameter '\(key)' (\(spec.name) takes \(known.isEmpty ? "no parameters" : known))")
        }
        var values = Dictionary(uniqueKeysWithValues: spec.arguments.map { ($0.key, $0.value) })
        for parameter in parameters where values[parameter.name] == nil {
            guard let fallback = parameter.defaultValue else {
                throw PluginError(spec: spec.description, message: "missing value for '\(parameter.name)' (\(parameter.help))")
            }
            values[parameter.name] = fallback
        }
        self.values = values
    }

    /// Whether the user wrote this argument (rather than taking its default).
    public func has(_ name: String) -> Bool { values[name] != nil }

    public func text(_ name: String) throws -> String {
        guard let value = values[name] else { throw PluginError(spec: spec, message: "missing value for '\(name)'") }
        return value
    }

    public func optionalText(_ name: String) -> String? {
        guard let value = values[name], value != "none", !value.isEmpty else { return nil }
        return value
    }

    public func number(_ name: String) throws -> Double {
        let raw = try text(name)
        guard let value = Double(raw), value.isFinite else {
            throw PluginError(spec: spec, message: "'\(name)' must be a number, found '\(raw)'")
        }
        return value
    }

    /// A number within `range`, such as a probability in 0...1.
    public func number(_ name: String, in range: ClosedRange<Double>) throws -> Double {
        let value = try number(name)
        guard range.contains(value) else {
            throw PluginError(spec: spec, message: "'\(name)' must be in [\(range.lowerBound.formatted()), \(range.upperBound.formatted())], found \(value)")
        }
        return value
    }

    public func integer(_ name: String, atLeast minimum: Int = .min) throws -> Int {
        let raw = try text(name)
        guard let value = Int(raw) else { throw PluginError(spec: spec, message: "'\(name)' must be an integer, found '\(raw)'") }
        guard value >= minimum else { throw PluginError(spec: spec, message: "'\(name)' must be at least \(minimum), found \(value)") }
        return value
    }

    public func boolean(_ name: String) throws -> Bool {
        switch try text(name).lowercased() {
        case "true", "yes", "1", "on": return true
        case "false", "no", "0", "off": return false
        case let raw: throw PluginError(spec: spec, message: "'\(name)' must be true or false, found '\(raw)'")
        }
    }

    /// A bracketed list `[a,b,c]` (or a single number).
    public func numbers(_ name: String) throws -> [Double] {
        var raw = try text(name)
        if raw.hasPrefix("[") && raw.hasSuffix("]") { raw = String(raw.dropFirst().dropLast()) }
        return try raw.split(separator: ",", omittingEmptySubsequences: false).enumerated().map { index, field in
            let item = field.trimmingCharacters(in: .whitespaces)
            guard let value = Double(item), value.isFinite else {
                throw PluginError(spec: spec, message: "'\(name)' entry \(index + 1) ('\(item)') is not a number")
            }
            return value
        }
    }
}
