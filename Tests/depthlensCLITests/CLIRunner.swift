import DepthLens
import Foundation
import XCTest

/// Runs the built `depthlens` executable, as a user would.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ relative: String) -> String {
        packageRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
    }

    /// The bundled checkpoints, `data/fmnist-*.h5`, as names without the extension, sorted.
    /// The names of the checkpoints shipped in data/ (`fmnist-NAME.h5` for the ResNets,
    /// `fmnist-NAME.safetensors` for the timm ViT and ConvNeXt), without the extension.
    static func shippedCheckpoints() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("data").path)
            .filter { $0.hasPrefix("fmnist-") }
            .compactMap { file in shippedExtensions.first { file.hasSuffix($0) }.map { String(file.dropLast($0.count)) } }
            .sorted()
    }

    static let shippedExtensions = [".h5", ".safetensors"]

    /// The path, relative to the package root, of the shipped checkpoint `name`.
    static func shippedFile(_ name: String) -> String {
        let files = shippedExtensions.map { "data/\(name)\($0)" }
        return files.first { FileManager.default.fileExists(atPath: packageRoot.appendingPathComponent($0).path) } ?? files[0]
    }

    /// The folder holding the test bundle, which also holds the built executable.
    static var productsDirectory: URL {
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL
    }

    /// `environment` adds to (or overrides) the test process's own variables.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> CLIResult {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("depthlens")
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.currentDirectoryURL = packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a large output cannot fill the pipe and stall the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLIResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Starts the binary without waiting for it; its standard error is piped (read it once it
    /// exits), its standard output discarded. `environment` adds to the test's own variables.
    static func start(_ arguments: [String], environment: [String: String] = [:]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("depthlens")
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, err)
    }

    /// The rows of a CSV file the binary wrote, keyed by column name.
    static func records(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: String]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try XCTUnwrap(CSVTable(parsing: text), "\(path) is not valid CSV", file: file, line: line).records
    }

    /// The `results` entries of an analysis' `--json` output.
    /// The `results` of an analysis' `--json` output, or of one of `report --json`'s tables.
    static func jsonResults(_ stdout: String, table: String? = nil, file: StaticString = #filePath,
                            line: UInt = #line) throws -> [[String: Any]] {
        var document = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], stdout, file: file, line: line)
        if let table { document = try XCTUnwrap(document[table] as? [String: Any], "no table \(table)", file: file, line: line) }
        return try XCTUnwrap(document["results"] as? [[String: Any]], stdout, file: file, line: line)
    }

    static func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("depthlens-cli-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
