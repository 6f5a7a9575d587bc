import Foundation
import XCTest

/// The fast engine runs oneDNN's JIT convolutions on every x86 instruction set oneDNN
/// knows, never its reference convolution ("ref:any"), and gives the same predictions
/// on each. oneDNN has JIT kernels for `nChw16c` only with AVX-512 and for `nChw8c` from
/// SSE4.1 up; asking an AVX2 machine for `nChw16c` once made a 500-image evaluation take
/// 20 minutes. `ONEDNN_MAX_CPU_ISA` caps what oneDNN may use (a cap above what the
/// machine has changes nothing), so each case checks a smaller machine than this one.
/// Every checkpoint shipped in data/ is checked: their topologies differ (timm27's
/// shortcut subsamples, the paper's averages; only the paper's convolutions have a bias).
final class InstructionSetTests: XCTestCase {
    static let subset = CLI.fixture("fashion-mnist-subset/t10k-images-idx3-ubyte.gz")

    struct Eval: Decodable {
        var correct: Int
        var nll: Double
    }

    /// The implementations oneDNN reports running, and the JSON result without the log.
    func evaluate(_ checkpoint: String, maxISA: String?) throws -> (implementations: [String], result: Eval) {
        var environment = ["ONEDNN_VERBOSE": "1", "DEPTHLENS_BACKEND": "fast"]
        environment["ONEDNN_MAX_CPU_ISA"] = maxISA
        let run = try CLI.run(["eval", checkpoint, "--data", Self.subset, "--limit", "48", "--json", "--quiet"],
                              environment: environment)
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n")
        let implementations = lines.filter { $0.hasPrefix("onednn_verbose,exec,cpu,convolution,") }
            .map { String($0.split(separator: ",")[4]) }
        let json = lines.filter { !$0.hasPrefix("onednn_verbose") }.joined(separator: "\n")
        return (implementations, try JSONDecoder().decode(Eval.self, from: Data(json.utf8)))
    }

    func testConvolutionsUseJITKernelsUnderEveryInstructionSet() throws {
        let shipped = try CLI.shippedCheckpoints()
        XCTAssertFalse(shipped.isEmpty, "no checkpoint in data/")
        for name in shipped {
            try checkEveryInstructionSet(CLI.shippedFile(name))
        }
    }

    func checkEveryInstructionSet(_ checkpoint: String) throws {
        let native = try evaluate(checkpoint, maxISA: nil)
        for isa in [nil, "SSE41", "AVX", "AVX2", "AVX512_CORE"] {
            let run = try evaluate(checkpoint, maxISA: isa)
            let label = "\(checkpoint), \(isa ?? "this machine's") instruction set"
            XCTAssertFalse(run.implementations.isEmpty, "\(label): no convolution reported by oneDNN")
            let reference = run.implementations.filter { $0.hasPrefix("ref") }
            XCTAssertTrue(reference.isEmpty, "\(label): \(reference.count) of \(run.implementations.count) convolutions "
                          + "ran oneDNN's reference kernel (\(Set(reference).sorted()))")
            XCTAssertEqual(run.result.correct, native.result.correct, label)
            XCTAssertEqual(run.result.nll, native.result.nll, accuracy: 1e-5, label)
        }
    }
}
