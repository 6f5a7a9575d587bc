import DepthLensPluginAPI
import Foundation

/// Any per-block list of survival probabilities: inline (`custom:values=[1,0.9,0.8]`) or
/// from a file (`custom:file=probs.csv`). Files: CSV with one probability per row (an
/// optional header; with two or more columns the last is the probability), or JSON (an
/// array of numbers, or an object with `survival_probabilities`).
struct CustomSchedule: SurvivalSchedule {
    let values: [Double]
    let source: String

    static let descriptor = ScheduleDescriptor(
        name: "custom", summary: "any per-block list: values=[p1,p2,...] or file=probs.csv|probs.json",
        parameters: [
            PluginParameter("values", .numbers, default: "none", help: "inline list of p_l, one per block"),
            PluginParameter("file", .path, default: "none", help: "CSV or JSON file of p_l, one per block"),
        ],
        origin: .builtIn
    ) { arguments in
        let inline = arguments.optionalText("values")
        let file = arguments.optionalText("file")
        switch (inline, file) {
        case (.some, .some):
            throw PluginError(spec: arguments.spec, message: "give values or file, not both")
        case (.some, nil):
            return CustomSchedule(values: try arguments.numbers("values"), source: "values")
        case (nil, .some(let path)):
            return CustomSchedule(values: try readProbabilities(path, spec: arguments.spec), source: path)
        case (nil, nil):
            throw PluginError(spec: arguments.spec, message: "give values=[p1,p2,...] or file=PATH")
        }
    }

    func survivalProbabilities(for blocks: [BlockSpec]) throws -> [Double] {
        guard values.count == blocks.count else {
            throw PluginError(spec: "custom", message: "\(source) has \(values.count) probabilities but there are \(blocks.count) blocks")
        }
        if let bad = values.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            throw PluginError(spec: "custom", message: "\(source): entry \(bad + 1) is \(values[bad]), outside [0, 1]")
        }
        return values
    }

    static func readProbabilities(_ path: String, spec: String) throws -> [Double] {
        // What the path is when it is no file: a pipe would block, a folder reads as nothing.
        var info = stat()
        if stat(path, &info) != 0, errno == ELOOP {
            throw PluginError(spec: spec, message: "\(path) is a symbolic link loop (too many levels of symbolic links)")
        }
        if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
            let kind = info.st_mode & S_IFMT
            let what = kind == S_IFDIR ? "a folder" : kind == S_IFIFO ? "a named pipe (FIFO)" : "not a regular file"
            throw PluginError(spec: spec, message: "\(path) is \(what); give a regular file of probabilities")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PluginError(spec: spec, message: "cannot read \(path) (\(FileManager.default.fileExists(atPath: path) ? "permissions?" : "no such file"))")
        }
        if path.lowercased().hasSuffix(".json") {
            guard let object = try? JSONSerialization.jsonObject(with: data) else {
                throw PluginError(spec: spec, message: "\(path): not valid JSON (unbalanced brackets, a trailing comma, NaN, or a truncated file?)")
            }
            let list = (object as? [Any]) ?? ((object as? [String: Any])?["survival_probabilities"] as? [Any])
            guard let list else {
                throw PluginError(spec: spec, message: "\(path): expected a JSON array of numbers or an object with survival_probabilities")
            }
            return try list.enumerated().map { index, item in
                // `true` and `false` are refused; `item is Bool` cannot tell them apart, as
                // it holds for the numbers 0 and 1 too (and so refused p = 1). A JSON
                // Boolean is the one NSNumber of type "c" (char).
                guard let number = item as? NSNumber, String(cString: number.objCType) != "c" else {
                    throw PluginError(spec: spec, message: "\(path): entry \(index + 1) is not a number")
                }
                return number.doubleValue
            }
        }
        let text = String(decoding: data, as: UTF8.self)
        var values: [Double] = []
        for (index, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let last = fields.last, !last.isEmpty else { continue }
            if let value = Double(last) {
                values.append(value)
            } else if index > 0 || values.count > 0 {
                throw PluginError(spec: spec, message: "\(path): line \(index + 1): '\(last)' is not a number")
            }  // else: a header line
        }
        guard !values.isEmpty else { throw PluginError(spec: spec, message: "\(path): no probabilities found") }
        return values
    }
}
