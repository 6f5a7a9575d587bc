import ArgumentParser
import Foundation

/// Runs the command line as swift-argument-parser's `main()` does, except that an error a
/// command throws while running is printed on one line: a line break in it (a file name
/// holding one, as any name may) is written as `\n`, so that `Error: ...` stays the only
/// line a failed run prints. Exit statuses are unchanged: a ``ValidationError`` still exits
/// 64, an ``ExitCode`` (an interrupted run's 130 or 143) passes through.
enum OneLineErrors {
    static func main(_ root: any ParsableCommand.Type) {
        var command: any ParsableCommand
        do {
            command = try root.parseAsRoot()
        } catch {
            root.exit(withError: error)
        }
        do {
            try command.run()
        } catch let error as ExitCode {
            root.exit(withError: error)
        } catch let error as CleanExit {
            root.exit(withError: error)
        } catch let error as ValidationError {
            root.exit(withError: ValidationError(escape(error.message)))
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // The parser's own requests and errors (`--help` runs a command that throws one).
            root.exit(withError: error)
        } catch {
            root.exit(withError: CLIError(escape(describe(error))))
        }
    }

    /// What swift-argument-parser would print for `error`.
    static func describe(_ error: any Error) -> String {
        if let description = (error as? LocalizedError)?.errorDescription { return description }
        if type(of: error) is NSError.Type { return (error as NSError).localizedDescription }
        return String(describing: error)
    }

    /// `text` with carriage returns and line feeds written as `\r` and `\n`.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
    }
}
