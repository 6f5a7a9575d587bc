import DepthLens
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

    /// Every file the generator writes is used by a case (or is a valid helper, or has a
    /// test of its own below).
    func testEveryCorpusFileHasACase() throws {
        let table = try String(contentsOfFile: CLI.fixture("malformed/cases.tsv"), encoding: .utf8)
        let files = try FileManager.default.contentsOfDirectory(atPath: CLI.fixture("malformed"))
            .filter { $0 != "cases.tsv" && !$0.hasPrefix("valid-") && !$0.contains("labels-idx1") && !Self.ownTests.contains($0) }
        XCTAssertGreaterThanOrEqual(files.count, 60)
        for file in files {
            XCTAssertTrue(table.contains("{m}/\(file)"), "\(file) has no case in cases.tsv")
        }
    }

    /// Corpus files whose expected outcome depends on the machine, tested below.
    static let ownTests: Set<String> = ["data-images-lzf.h5"]

    /// h5py's lzf filter (HDF5 filter 32000) is no part of libhdf5: Debian's lacks it, a
    /// libhdf5 that finds an lzf plugin (`HDF5_PLUGIN_PATH`) has it. The test asks libhdf5
    /// (`H5Zfilter_avail`, the call the reader makes) and asserts the outcome for either:
    /// the images read like any others (64 zero images, all labelled 0) where the filter is
    /// available, and a one-line refusal naming the missing filter, not a damaged file,
    /// where it is not.
    func testAnLzfCompressedDatasetIsReadWhereTheFilterIsAvailableAndNamedWhereNot() throws {
        let data = CLI.fixture("malformed/data-images-lzf.h5")
        let result = try CLI.run(["eval", CLI.fixture("malformed/valid-tiny-8x8.h5"), "--data", data])
        if HDF5Filters.isAvailable(HDF5Filters.lzf) {
            XCTAssertEqual(result.status, 0, "libhdf5 has the lzf filter: \(result.stderr)")
            XCTAssertTrue(result.stdout.contains("(64 images)") && result.stdout.contains("/64 correct)"), result.stdout)
        } else {
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertEqual(result.stderr, "Error: \(data): /images: is compressed with the 'lzf' filter (HDF5 filter 32000), which this libhdf5 cannot decode: the filter is missing, the file is not damaged; rewrite the dataset with gzip or no compression (h5py: compression='gzip')\n")
        }
    }
}

