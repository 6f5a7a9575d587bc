import DepthLens
import Foundation

/// Content fingerprints of the files a journaled run reads (``ContentFingerprint``), with
/// the errors in the command line's one-line form.
enum RunFingerprints {
    static func of(_ paths: [String]) throws -> [ContentFingerprint] {
        var seen = Set<String>()
        do {
            return try paths.filter { seen.insert($0).inserted }.map { try ContentFingerprint.of(file: $0) }
        } catch let error as FingerprintError {
            throw CLIError(error.description)
        }
    }
}
