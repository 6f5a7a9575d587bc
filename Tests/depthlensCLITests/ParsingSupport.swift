import ArgumentParser
import DepthLensCLI
import XCTest

/// In-process parsing of `depthlens` command lines, as swift-argument-parser's own tests
/// do (`parseAsRoot`, `message(for:)`, `exitCode(for:)`, `helpMessage(for:)`), through the
/// one public entry point `DepthLensMain.command()`.
///
/// The commands themselves are internal to DepthLensCLI (release builds have no
/// `@testable import`), so a parsed command's values are read by reflection: each
/// `@Option`, `@Flag`, `@Argument` and `@OptionGroup` keeps what it parsed in
/// `_parsedValue` as `.value(V)`. If swift-argument-parser changes that layout,
/// `ParsedCommand.value` throws and every test reading values fails: nothing passes
/// silently.
enum Parsing {
    /// The root command, with the built-in schedules and metrics registered (as `run` does).
    static var root: ParsableCommand.Type { DepthLensMain.command() }

    /// Parses `arguments` (after `depthlens`), validation included, without running.
    static func parse(_ arguments: [String]) throws -> ParsedCommand {
        ParsedCommand(command: try root.parseAsRoot(arguments))
    }

    /// The subcommand type named `name`, for its help text.
    static func subcommand(_ name: String) throws -> ParsableCommand.Type {
        try XCTUnwrap(root.configuration.subcommands.first { $0._commandName == name }, "no subcommand \(name)")
    }

    /// Asserts that `arguments` are refused while parsing or validating, with exactly
    /// `message` (the line after `Error: `) and the exit status `status`.
    static func assertRefused(_ arguments: [String], _ message: String, status: Int32 = 64,
                              file: StaticString = #filePath, line: UInt = #line) {
        do {
            let parsed = try root.parseAsRoot(arguments)
            XCTFail("\(arguments) parsed as \(type(of: parsed)); expected '\(message)'", file: file, line: line)
        } catch {
            XCTAssertEqual(root.message(for: error), message, "\(arguments)", file: file, line: line)
            XCTAssertEqual(root.exitCode(for: error).rawValue, status, "\(arguments): exit status", file: file, line: line)
        }
    }
}

/// A parsed command and typed access to what each flag set.
struct ParsedCommand {
    var command: ParsableCommand

    /// The command's name, such as `lesion`.
    var name: String { type(of: command)._commandName }

    /// The value of the property at `path`, through option groups: `"runtime.batchSize"`
    /// is the `batchSize` of the `runtime` group. `T` may be optional (`Int?.self`).
    func value<T>(_ path: String, as type: T.Type = T.self, file: StaticString = #filePath, line: UInt = #line) throws -> T {
        var current: Any = command
        for name in path.split(separator: ".") {
            let wrapper = try XCTUnwrap(Mirror(reflecting: current).children.first { $0.label == "_\(name)" }?.value,
                                        "\(self.name) has no property \(name) (in \(path))", file: file, line: line)
            let parsed = try XCTUnwrap(Mirror(reflecting: wrapper).children.first { $0.label == "_parsedValue" }?.value,
                                       "\(path): not a parsed property", file: file, line: line)
            let payload = try XCTUnwrap(Mirror(reflecting: parsed).children.first, "\(path): no value", file: file, line: line)
            XCTAssertEqual(payload.label, "value", "\(path): not parsed", file: file, line: line)
            current = payload.value
        }
        return try XCTUnwrap(current as? T, "\(path) is a \(Swift.type(of: current)), not a \(T.self)", file: file, line: line)
    }
}
