/// A plugin named with its arguments, as written on the command line:
/// `NAME` or `NAME:key=value,key=value`. A value may be a bracketed list
/// (`custom:values=[1,0.9,0.8]`), whose commas do not separate arguments.
public struct PluginSpec: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    /// Arguments in the order written.
    public var arguments: [(key: String, value: String)]

    public init(name: String, arguments: [(key: String, value: String)] = []) {
        self.name = name
        self.arguments = arguments
    }

    public static func == (a: PluginSpec, b: PluginSpec) -> Bool {
        a.name == b.name && a.arguments.map(\.key) == b.arguments.map(\.key) && a.arguments.map(\.value) == b.arguments.map(\.value)
    }

    /// Parses `NAME[:key=value,...]`.
    /// - Throws: ``PluginError`` for an empty name, an argument without `=`, an empty key
    ///   or value, a repeated key, or an unclosed bracket.
    public static func parse(_ text: String) throws -> PluginSpec {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let (name, rest) = trimmed.firstIndex(of: ":").map { (String(trimmed[..<$0]), String(trimmed[trimmed.index(after: $0)...])) }
            ?? (trimmed, "")
        guard !name.isEmpty else { throw PluginError(spec: text, message: "no plugin name before ':'") }
        var arguments: [(key: String, value: String)] = []
        for field in try splitTopLevel(rest, spec: text) where !(field.isEmpty && rest.isEmpty) {
            guard let equals = field.firstIndex(of: "=") else {
                throw PluginError(spec: text, message: "argument '\(field)' is not key=value")
            }
            let key = field[..<equals].trimmingCharacters(in: .whitespaces)
            let value = field[field.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw PluginError(spec: text, message: "argument '\(field)' has no key") }
            guard !value.isEmpty else { throw PluginError(spec: text, message: "argument '\(key)' has no value") }
            guard !arguments.contains(where: { $0.key == key }) else {
                throw PluginError(spec: text, message: "argument '\(key)' is given twice")
            }
            arguments.append((key, value))
        }
        return PluginSpec(name: name, arguments: arguments)
    }

    private static func splitTopLevel(_ text: String, spec: String) throws -> [String] {
        var fields: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            switch character {
            case "[": depth += 1; current.append(character)
            case "]":
                depth -= 1
                guard depth >= 0 else { throw PluginError(spec: spec, message: "']' without '['") }
                current.append(character)
            case "," where depth == 0: fields.append(current); current = ""
            default: current.append(character)
            }
        }
        guard depth == 0 else { throw PluginError(spec: spec, message: "'[' is never closed") }
        fields.append(current)
        return fields
    }

    public var description: String {
        arguments.isEmpty ? name : name + ":" + arguments.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

/// A problem with a plugin spec, a plugin's arguments or a plugin itself.
public struct PluginError: Error, CustomStringConvertible, Equatable {
    /// The spec or plugin the problem is in.
    public var spec: String
    public var message: String

    public init(spec: String, message: String) {
        self.spec = spec
        self.message = message
    }

    public var description: String { "'\(spec)': \(message)" }
}
