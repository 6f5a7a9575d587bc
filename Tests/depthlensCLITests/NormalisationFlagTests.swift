import DepthLens
import Foundation
import XCTest

/// `--mean/--std` with float HDF5 images (issue 23): they used to be ignored without a word,
/// since float images are read as stored. An explicit request is now applied to the stored
/// values, (x - mean) / std, as torchvision's `Normalize` does to a float tensor.
final class NormalisationFlagTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    /// The data's images normalised here by (x - 0.25) / 0.5 and stored, with their labels.
    func normalisedCopy(in folder: URL) throws -> String {
        let source = try HDF5ImageSource(path: data)
        let normalised = folder.appendingPathComponent("normalised.h5").path
        let root = try HDF5File.create(normalised).root
        try root.write(try source.pixels(0..<source.count).map { ($0 - 0.25) / 0.5 },
                       shape: [source.count, source.channels, source.height, source.width], as: "images")
        try root.write(try source.labels(0..<source.count)!.map { Int64($0) }, shape: [source.count], as: "labels")
        return normalised
    }

    /// Batch-norm recalibration's images are fed to the same network: the flags normalise
    /// them as they normalise the data (before, they got the checkpoint's normalisation
    /// whatever the flags said).
    func testRecalibrationImagesAreNormalisedAsTheDataAre() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let normalised = try normalisedCopy(in: folder)
        func sample(_ name: String, data: String, recalibration: String, _ flags: [String]) throws -> Data {
            let output = folder.appendingPathComponent(name).path
            let run = try CLI.run(["sample", checkpoint, "--data", data, "--members", "3", "--recalibrate", "16",
                                   "--recalibration-data", recalibration, "--quiet", "-o", output] + flags)
            XCTAssertEqual(run.status, 0, run.stderr)
            return try Data(contentsOf: URL(fileURLWithPath: "\(output)/sample-results.csv"))
        }
        let flagged = try sample("flagged", data: data, recalibration: data, ["--mean", "0.25", "--std", "0.5"])
        let stored = try sample("stored", data: normalised, recalibration: normalised, [])
        let mixed = try sample("mixed", data: normalised, recalibration: data, [])
        XCTAssertEqual(flagged, stored, "both image sets normalised by the flags")
        XCTAssertNotEqual(mixed, stored, "the recalibration images' normalisation changes the results")
    }

    func testMeanAndStdApplyToFloatImagesExactlyAsANormalisedCopyOfThem() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let normalised = try normalisedCopy(in: folder)
        let source = try HDF5ImageSource(path: data)
        let flagged = try CLI.run(["predict", checkpoint, "--data", data, "--mean", "0.25", "--std", "0.5"])
        let stored = try CLI.run(["predict", checkpoint, "--data", normalised])
        let plain = try CLI.run(["predict", checkpoint, "--data", data])
        for result in [flagged, stored, plain] { XCTAssertEqual(result.status, 0, result.stderr) }
        XCTAssertEqual(flagged.stdout, stored.stdout, "--mean 0.25 --std 0.5 gives the logits of the images normalised beforehand")
        XCTAssertNotEqual(flagged.stdout, plain.stdout, "the flags change the input (they were ignored before)")
        XCTAssertEqual(flagged.stdout.split(separator: "\n").count, source.count + 1, "a header and one row per image")

        // A std so small that a stored value overflows is named, with the image. (The flag
        // check refuses a std that overflows pixels in 0...1; these images reach -3.3 and 3.7.)
        let tiny = try CLI.run(["eval", checkpoint, "--data", data, "--mean", "0", "--std", "4e-39"])
        XCTAssertEqual(tiny.status, 1, tiny.stderr)
        XCTAssertTrue(tiny.stderr.hasPrefix("Error: \(data): /images: image 0: normalising the stored value "), tiny.stderr)
        XCTAssertTrue(tiny.stderr.contains(" with mean 0.0 and std 4e-39 gives ") && tiny.stderr.hasSuffix("inf; give a larger std\n"), tiny.stderr)
    }

    /// The flags change every input, so a journal records them: continuing saved units with
    /// another normalisation would mix results (here a shard's rerun, which continues its
    /// journal; `--resume` checks the same fields).
    func testContinuingAJournalWithAnotherNormalisationIsRefused() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = ["sample", checkpoint, "--data", data, "--members", "20", "--quiet", "-o", folder.path, "--shard", "1/2", "--std", "0.5"]
        XCTAssertEqual(try CLI.run(base + ["--mean", "0.25"]).status, 0)
        let other = try CLI.run(base + ["--mean", "0.3"])
        XCTAssertEqual(other.status, 1, other.stderr)
        XCTAssertTrue(other.stderr.contains("was written by a run with another configuration: data was '"), other.stderr)
        XCTAssertTrue(other.stderr.contains("limit none, --mean 0.25 --std 0.5)', now '"), other.stderr)
        XCTAssertTrue(other.stderr.contains("limit none, --mean 0.3 --std 0.5)'"), other.stderr)
        XCTAssertEqual(try CLI.run(base + ["--mean", "0.25"]).status, 0, "the same flags continue it")
    }
}
