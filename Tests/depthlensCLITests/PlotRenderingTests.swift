import DepthLens
import Foundation
import XCTest

/// Every SVG the analyses write renders (rsvg-convert, Debian's librsvg2-bin) and keeps
/// every text element inside its canvas.
final class PlotRenderingTests: XCTestCase {
    let checkpoint = CLI.fixture("golden/official.ckpt.h5")
    let data = CLI.fixture("analyses/official-labelled.h5")

    /// A text element's box, from its position, anchor, font size and an estimated width
    /// (``LinePlot/estimatedWidth(_:fontSize:)``): 0.8 em above the baseline, 0.25 em below;
    /// rotated by -90 degrees when its transform says so.
    struct TextBox {
        var text: String
        var minX, maxX, minY, maxY: Double
    }

    static func attributes(_ text: String) -> [String: String] {
        let pattern = try! NSRegularExpression(pattern: #"([A-Za-z][\w-]*)="([^"]*)""#)
        var out: [String: String] = [:]
        for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            out[String(text[Range(m.range(at: 1), in: text)!])] = String(text[Range(m.range(at: 2), in: text)!])
        }
        return out
    }

    /// The canvas size and the box of every text element of `svg`.
    static func textBoxes(_ svg: String) throws -> (width: Double, height: Double, boxes: [TextBox]) {
        let root = try XCTUnwrap(svg.range(of: "<svg [^>]*>", options: .regularExpression).map { attributes(String(svg[$0])) })
        let width = try XCTUnwrap(root["width"].flatMap(Double.init)), height = try XCTUnwrap(root["height"].flatMap(Double.init))
        let rootFont = root["font-size"].flatMap(Double.init) ?? 16
        let element = try NSRegularExpression(pattern: #"<text([^>]*)>([^<]*)</text>"#)
        var boxes: [TextBox] = []
        for m in element.matches(in: svg, range: NSRange(svg.startIndex..., in: svg)) {
            let a = attributes(String(svg[Range(m.range(at: 1), in: svg)!]))
            let text = String(svg[Range(m.range(at: 2), in: svg)!])
                .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
            let size = a["font-size"].flatMap(Double.init) ?? rootFont
            let w = LinePlot.estimatedWidth(text, fontSize: size)
            let (before, after): (Double, Double) = switch a["text-anchor"] ?? "start" {
            case "middle": (w / 2, w / 2)
            case "end": (w, 0)
            default: (0, w)
            }
            if let transform = a["transform"] {
                // translate(x,y) rotate(-90): the text runs upwards from (x, y).
                let numbers = transform.split(whereSeparator: { !"0123456789.-".contains($0) }).compactMap { Double($0) }
                XCTAssertTrue(transform.contains("rotate(-90)") && numbers.count == 3, "unexpected transform \(transform)")
                let (x, y) = (numbers[0], numbers[1])
                boxes.append(TextBox(text: text, minX: x - 0.8 * size, maxX: x + 0.25 * size, minY: y - after, maxY: y + before))
            } else {
                let x = try XCTUnwrap(a["x"].flatMap(Double.init), text), y = try XCTUnwrap(a["y"].flatMap(Double.init), text)
                boxes.append(TextBox(text: text, minX: x - before, maxX: x + after, minY: y - 0.8 * size, maxY: y + 0.25 * size))
            }
        }
        return (width, height, boxes)
    }

    /// The text elements of `svg` that reach outside its canvas.
    static func textOutsideCanvas(_ svg: String) throws -> [String] {
        let (width, height, boxes) = try textBoxes(svg)
        return boxes.filter { $0.minX < 0 || $0.maxX > width || $0.minY < 0 || $0.maxY > height }.map {
            "'\($0.text)' spans x \(Int($0.minX))...\(Int($0.maxX)), y \(Int($0.minY))...\(Int($0.maxY)) on \(Int(width))x\(Int(height))"
        }
    }

    func testTheCheckFindsTextOutsideTheCanvas() throws {
        // The legend of the plots before issue 22: text from x = 598 on a 760-pixel canvas.
        let clipped = #"<svg xmlns="http://www.w3.org/2000/svg" width="760" height="440" font-size="12"><text x="598" y="54">sub-networks of that depth (±1 sd)</text></svg>"#
        XCTAssertEqual(try Self.textOutsideCanvas(clipped).count, 1)
        let rotated = #"<svg xmlns="http://www.w3.org/2000/svg" width="760" height="100" font-size="12"><text transform="translate(18,50.00) rotate(-90)" text-anchor="middle">a rather long label of the y axis</text></svg>"#
        XCTAssertEqual(try Self.textOutsideCanvas(rotated).count, 1, "a rotated label longer than the canvas is tall")
        let inside = #"<svg xmlns="http://www.w3.org/2000/svg" width="760" height="440" font-size="12"><text x="380" y="22" text-anchor="middle" font-size="15">Title</text></svg>"#
        XCTAssertEqual(try Self.textOutsideCanvas(inside), [])
    }

    func testEverySVGTheAnalysesWriteRendersWithItsTextInsideTheCanvas() throws {
        let folder = CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let common = [checkpoint, "--data", data, "--quiet", "--trials", "2"]
        let runs: [[String]] = [
            ["report"] + common + ["--members", "3", "--max-k", "3", "--y-scale", "log"],
            ["lesion"] + common + ["--single", "--random-k", "2", "--prune-depth", "3", "--y-scale", "clip"],
            ["sample", checkpoint, "--data", data, "--quiet", "--members", "3"],
            ["reorder"] + common + ["--swaps", "0,1"],
            ["ensemble", checkpoint, "--data", data, "--quiet", "--members", "2"],
            ["depth"] + common + ["--depths", "0,3,6"],
            ["paths", checkpoint, "--quiet"],
            ["compare"] + [checkpoint, CLI.fixture("golden/preact-avgpool.ckpt.h5")] + Array(common.dropFirst()) + ["--members", "3", "--max-k", "3", "--y-scale", "clip"],
        ]
        var svgs: [String] = []
        for (i, arguments) in runs.enumerated() {
            let out = folder.appendingPathComponent("\(i)-\(arguments[0])").path
            let result = try CLI.run(arguments + ["-o", out])
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            svgs += try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".svg") }.map { "\(out)/\($0)" }
        }
        XCTAssertGreaterThanOrEqual(svgs.count, 23, "\(svgs)")
        for path in svgs {
            let svg = try String(contentsOfFile: path, encoding: .utf8)
            XCTAssertEqual(try Self.textOutsideCanvas(svg), [], path)
            let png = path + ".png"
            let render = Process()
            render.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            render.arguments = ["rsvg-convert", "--format", "png", "--output", png, path]
            render.standardError = FileHandle.nullDevice
            try render.run()
            render.waitUntilExit()
            XCTAssertEqual(render.terminationStatus, 0, "rsvg-convert (Debian's librsvg2-bin) cannot render \(path)")
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: png))) ?? Data()
            XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "\(path) did not render to a PNG")
        }
    }
}
