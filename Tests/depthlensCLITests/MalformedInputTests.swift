import Foundation
import XCTest

/// Every bad input of the corpus (Tests/Fixtures/malformed/cases.tsv: files written by
/// tools/make_malformed.py, malformed schedule files, bad flags) run through the binary:
/// a non-zero exit with the expected status, a message naming the problem and where it
/// is, and no result file written.
final class MalformedInputTests: XCTestCase {
    struct Case {
        var name: String
        var status: Int32
        var fragments: [String]
        var arguments: [String]
    }

    static func cases(output: String) throws -> [Case] {
        let table = try String(contentsOfFile: CLI.fixture("malformed/cases.tsv"), encoding: .utf8)
        func expand(_ text: String) -> String {
            text.replacingOccurrences(of: "{m}", with: "Tests/Fixtures/malformed")
                .replacingOccurrences(of: "{g}", with: "Tests/Fixtures/golden")
                .replacingOccurrences(of: "{a}", with: "Tests/Fixtures/analyses")
                .replacingOccurrences(of: "{out}", with: output)
        }
        return try table.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.map { line in
            let columns = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard columns.count == 4, let status = Int32(columns[1]) else {
                throw NSError(domain: "cases.tsv", code: 1, userInfo: [NSLocalizedDescriptionKey: "bad line: \(line)"])
            }
            return Case(name: columns[0], status: status,
                        fragments: columns[2].components(separatedBy: " && ").map(expand),
                        arguments: columns[3].split(separator: " ").map { expand(String($0)) })
        }
    }

    func testEveryBadInputGetsItsMessageAndExitStatusAndWritesNothing() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases = try Self.cases(output: folder.path)
        XCTAssertGreaterThanOrEqual(cases.count, 90)
        XCTAssertEqual(Set(cases.map(\.name)).count, cases.count, "case names are unique")
        for c in cases {
            let result = try CLI.run(c.arguments)
            XCTAssertEqual(result.status, c.status, "\(c.name): exit status; stderr: \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("Error: "), "\(c.name): \(result.stderr)")
            for fragment in c.fragments {
                let alternatives = fragment.components(separatedBy: " || ")
                XCTAssertTrue(alternatives.contains { result.stderr.contains($0) }, "\(c.name): '\(result.stderr)' lacks '\(fragment)'")
            }
            XCTAssertFalse(result.stderr.contains("Fatal error") || result.stderr.contains("Backtrac"), "\(c.name) crashed")
            let written = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            XCTAssertEqual(written, [], "\(c.name) left files in the output folder")
        }
    }

    /// Every file the generator writes is used by a case (or is a valid helper).
    func testEveryCorpusFileHasACase() throws {
        let table = try String(contentsOfFile: CLI.fixture("malformed/cases.tsv"), encoding: .utf8)
        let files = try FileManager.default.contentsOfDirectory(atPath: CLI.fixture("malformed"))
            .filter { $0 != "cases.tsv" && !$0.hasPrefix("valid-") && !$0.contains("labels-idx1") }
        XCTAssertGreaterThanOrEqual(files.count, 60)
        for file in files {
            XCTAssertTrue(table.contains("{m}/\(file)"), "\(file) has no case in cases.tsv")
        }
    }
}

