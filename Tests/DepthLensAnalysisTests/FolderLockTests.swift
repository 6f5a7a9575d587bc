import DepthLens
import Foundation
import XCTest

/// `FolderLock` through the library: one holder at a time, a stale file taken over, the
/// file removed on release.
final class FolderLockLibraryTests: XCTestCase {
    func testOneHolderAtATimeAndTheFileIsRemovedOnRelease() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("folder-lock-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let lockPath = FolderLock.path(in: folder)

        let first = try FolderLock(folder: folder, command: "depthlens sample")
        XCTAssertNil(first.previousHolder)
        let text = try String(contentsOfFile: lockPath, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("pid \(getpid())\ncommand depthlens sample\nstarted "), text)
        // flock conflicts between two open files even in one process.
        XCTAssertThrowsError(try FolderLock(folder: folder, command: "depthlens report")) { error in
            guard let error = error as? FolderLockError, case .held(let holder) = error.reason else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(holder?.pid, getpid())
            XCTAssertEqual(holder?.command, "depthlens sample")
            XCTAssertEqual(error.description, "\(folder): the folder is in use by another run (\(holder!)); wait for it to finish, or write to another folder")
        }
        XCTAssertEqual(try String(contentsOfFile: lockPath, encoding: .utf8), text, "a refused lock leaves the file as it was")
        first.release()
        XCTAssertFalse(FileManager.default.fileExists(atPath: lockPath))

        // A file left behind (no process holds its lock) is stale: taken over, its holder reported.
        try "pid 4000000\ncommand depthlens depth\nstarted 2026-01-01T00:00:00Z\n".write(toFile: lockPath, atomically: false, encoding: .utf8)
        let second = try FolderLock(folder: folder, command: "depthlens lesion")
        XCTAssertEqual(second.previousHolder, FolderLock.Holder(pid: 4_000_000, command: "depthlens depth", started: "2026-01-01T00:00:00Z"))
        XCTAssertTrue(try String(contentsOfFile: lockPath, encoding: .utf8).hasPrefix("pid \(getpid())\ncommand depthlens lesion\n"))
        second.release()
        second.release()
        XCTAssertFalse(FileManager.default.fileExists(atPath: lockPath))
    }
}
