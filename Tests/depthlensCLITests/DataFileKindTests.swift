import DepthLens
import Foundation
import XCTest

/// Data files DepthLens must refuse rather than misread or wait on (issue 23, point 3).
final class DataFileKindTests: XCTestCase {
    let checkpoint = CLI.fixture("malformed/valid-tiny-8x8.h5")

    /// A named pipe as `--data` is refused at once. The test holds the pipe open for
    /// reading and writing with bytes in it, so that a build without the check reads them
    /// (and fails on the message) instead of waiting for a writer forever.
    func testANamedPipeIsRefused() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("images.h5").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let descriptor = open(fifo, O_RDWR | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        defer { close(descriptor) }
        XCTAssertEqual(write(descriptor, "\u{89}HDF\r\n\u{1a}\n", 8), 8)
        let result = try CLI.run(["eval", checkpoint, "--data", fifo])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("Error: \(fifo): is a named pipe (FIFO); give a regular file"), result.stderr)
        let folderAsData = try CLI.run(["eval", checkpoint, "--data", folder.path])
        XCTAssertEqual(folderAsData.status, 1, folderAsData.stderr)
        XCTAssertTrue(folderAsData.stderr.contains("\(folder.path): is a folder; give a regular file"), folderAsData.stderr)
    }
}
