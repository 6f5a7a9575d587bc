import ArgumentParser
import DepthLens
import Foundation
import XCTest

/// Every subcommand parsed in-process (issue 19, point 8): the defaults, each flag landing
/// in its field, and bad values refused while parsing or validating, with the exact
/// message and exit status 64 (docs/reliability.md: a flag that fails validation).
/// Nothing here opens a file: parsing never does.
final class CommandParsingTests: XCTestCase {
    let ckpt = "net.h5"

    // MARK: the root command

    func testTheRootCommandOffersEveryAnalysisAndHidesBench() throws {
        let help = Parsing.root.helpMessage(columns: 200)
        let section = help.components(separatedBy: "SUBCOMMANDS:\n").last!.components(separatedBy: "\n\n").first!
        let listed = section.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        XCTAssertEqual(listed, ["inspect", "eval", "predict", "sample", "ensemble", "lesion", "depth", "reorder", "paths",
                                "report", "compare", "merge", "slurm", "schedule", "plugins"], help)
        XCTAssertEqual(try Parsing.parse(["bench", ckpt, "--data", "d.h5"]).name, "bench", "hidden, but still a command")
    }

    /// Every argument, option and flag of every command, hidden ones included, says what
    /// it is for in `--help` (from swift-argument-parser's own help dump).
    func testEveryFlagOfEveryCommandHasHelp() throws {
        let dump = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(Parsing.root._dumpHelp().utf8)) as? [String: Any])
        var commands = [try XCTUnwrap(dump["command"] as? [String: Any])]
        var seen: [String] = []
        while let command = commands.popLast() {
            let name = command["commandName"] as? String ?? "?"
            seen.append(name)
            // swift-argument-parser's own `help` command leaves its arguments undocumented.
            let arguments = name == "help" ? [] : (command["arguments"] as? [[String: Any]] ?? [])
            for argument in arguments {
                let flag = (argument["names"] as? [[String: Any]])?.compactMap { $0["name"] as? String }.joined(separator: "/")
                    ?? argument["valueName"] as? String ?? "?"
                let abstract = argument["abstract"] as? String ?? ""
                XCTAssertFalse(abstract.trimmingCharacters(in: .whitespaces).isEmpty, "\(name) \(flag) has no help")
            }
            commands += command["subcommands"] as? [[String: Any]] ?? []
        }
        XCTAssertEqual(Set(seen), ["depthlens", "inspect", "eval", "predict", "sample", "ensemble", "lesion", "depth", "reorder",
                                   "paths", "report", "compare", "merge", "slurm", "schedule", "plugins", "bench", "help"])
    }

    func testVersionIsPrintedAndExitsZero() {
        XCTAssertThrowsError(try Parsing.root.parseAsRoot(["--version"])) { error in
            XCTAssertEqual(Parsing.root.message(for: error), "0.1.0")
            XCTAssertEqual(Parsing.root.exitCode(for: error), .success)
        }
    }

    func testAnUnknownSubcommandOrFlagIsAUsageError() {
        Parsing.assertRefused(["evaluate"], "Unexpected argument 'evaluate'")
        Parsing.assertRefused(["evaluate", ckpt], "2 unexpected arguments: 'evaluate', '\(ckpt)'")
        Parsing.assertRefused(["eval", ckpt, "--batchsize", "8"], "Unknown option '--batchsize'. Did you mean '--batch-size'?")
        Parsing.assertRefused(["eval"], "Missing expected argument '<checkpoint>'")
    }

    // MARK: inspect

    func testInspectDefaultsAndFlags() throws {
        let plain = try Parsing.parse(["inspect", ckpt])
        XCTAssertEqual(plain.name, "inspect")
        XCTAssertEqual(try plain.value("checkpoint", as: String.self), ckpt)
        XCTAssertEqual(try plain.value("noTensors", as: Bool.self), false)
        XCTAssertEqual(try plain.value("operations", as: Bool.self), false)
        XCTAssertEqual(try plain.value("architecture.arch", as: String?.self), nil)

        let all = try Parsing.parse(["inspect", ckpt, "--no-tensors", "--operations", "--arch", "timm/resnet18"])
        XCTAssertEqual(try all.value("noTensors", as: Bool.self), true)
        XCTAssertEqual(try all.value("operations", as: Bool.self), true)
        XCTAssertEqual(try all.value("architecture.arch", as: String?.self), "timm/resnet18")
    }

    func testAnUnknownArchitectureIsRefusedWithTheKnownOnes() {
        let known = ArchitecturePreset.all.map(\.name)
        XCTAssertTrue(known.contains("torchvision/resnet50"))
        Parsing.assertRefused(["inspect", ckpt, "--arch", "timm/resnet19"],
                              "--arch: unknown architecture 'timm/resnet19'; known: \(known.joined(separator: ", ")).")
        Parsing.assertRefused(["schedule", "linear", "--checkpoint", ckpt, "--arch", "resnet18"],
                              "--arch: unknown architecture 'resnet18'; known: \(known.joined(separator: ", ")).")
    }

    // MARK: eval (data and runtime options)

    func testEvalDefaults() throws {
        let eval = try Parsing.parse(["eval", ckpt])
        XCTAssertEqual(eval.name, "eval")
        XCTAssertEqual(try eval.value("rule", as: TrainingMetadata.TestTimeRule?.self), nil)
        XCTAssertEqual(try eval.value("runtime.batchSize", as: Int.self), 256)
        XCTAssertEqual(try eval.value("runtime.threads", as: Int?.self), nil)
        XCTAssertEqual(try eval.value("dataOptions.data", as: String?.self), nil)
        XCTAssertEqual(try eval.value("dataOptions.labels", as: String?.self), nil)
        XCTAssertEqual(try eval.value("dataOptions.imagesDataset", as: String.self), "images")
        XCTAssertEqual(try eval.value("dataOptions.labelsDataset", as: String.self), "labels")
        XCTAssertEqual(try eval.value("dataOptions.mean", as: String?.self), nil)
        XCTAssertEqual(try eval.value("dataOptions.std", as: String?.self), nil)
        XCTAssertEqual(try eval.value("dataOptions.offset", as: Int.self), 0)
        XCTAssertEqual(try eval.value("dataOptions.limit", as: Int?.self), nil)
        XCTAssertEqual(try eval.value("json", as: Bool.self), false)
        XCTAssertEqual(try eval.value("quiet", as: Bool.self), false)
    }

    func testEvalParsesEveryFlagIntoItsField() throws {
        let eval = try Parsing.parse([
            "eval", ckpt, "--rule", "inverted", "--batch-size", "32", "--threads", "3", "--data", "images.idx",
            "--labels", "labels.idx", "--images-dataset", "x", "--labels-dataset", "y", "--mean", "0.5",
            "--std", "0.25", "--offset", "10", "--limit", "100", "--json", "--quiet",
        ])
        XCTAssertEqual(try eval.value("checkpoint", as: String.self), ckpt)
        XCTAssertEqual(try eval.value("rule", as: TrainingMetadata.TestTimeRule?.self), .inverted)
        XCTAssertEqual(try eval.value("runtime.batchSize", as: Int.self), 32)
        XCTAssertEqual(try eval.value("runtime.threads", as: Int?.self), 3)
        XCTAssertEqual(try eval.value("dataOptions.data", as: String?.self), "images.idx")
        XCTAssertEqual(try eval.value("dataOptions.labels", as: String?.self), "labels.idx")
        XCTAssertEqual(try eval.value("dataOptions.imagesDataset", as: String.self), "x")
        XCTAssertEqual(try eval.value("dataOptions.labelsDataset", as: String.self), "y")
        XCTAssertEqual(try eval.value("dataOptions.mean", as: String?.self), "0.5")
        XCTAssertEqual(try eval.value("dataOptions.std", as: String?.self), "0.25")
        XCTAssertEqual(try eval.value("dataOptions.offset", as: Int.self), 10)
        XCTAssertEqual(try eval.value("dataOptions.limit", as: Int?.self), 100)
        XCTAssertEqual(try eval.value("json", as: Bool.self), true)
        XCTAssertEqual(try eval.value("quiet", as: Bool.self), true)
    }

    func testEvalRefusesBadDataAndRuntimeValues() {
        Parsing.assertRefused(["eval", ckpt, "--batch-size", "many"], "The value 'many' is invalid for '--batch-size <batch-size>'")
        Parsing.assertRefused(["eval", ckpt, "--batch-size", "0"], "--batch-size must be positive.")
        Parsing.assertRefused(["eval", ckpt, "--threads", "0"], "--threads must be positive.")
        Parsing.assertRefused(["eval", ckpt, "--threads", "2.5"], "The value '2.5' is invalid for '--threads <threads>'")
        Parsing.assertRefused(["eval", ckpt, "--offset=-1"], "--offset must be zero or positive.")
        Parsing.assertRefused(["eval", ckpt, "--limit", "0"], "--limit must be positive.")
        Parsing.assertRefused(["eval", ckpt, "--mean", "0.5"], "Give --mean and --std together.")
        Parsing.assertRefused(["eval", ckpt, "--std", "0.5"], "Give --mean and --std together.")
        Parsing.assertRefused(["eval", ckpt, "--mean", "0.5,x", "--std", "1,1"], "--mean: 'x' is not a number.")
        Parsing.assertRefused(["eval", ckpt, "--mean", "0.5", "--std", "inf"], "--std: 'inf' is not a number.")
        Parsing.assertRefused(["eval", ckpt, "--rule", "sometimes"],
                              "The value 'sometimes' is invalid for '--rule <rule>'. Please provide one of 'expectation' and 'inverted'.")
    }

    // MARK: predict (gate options)

    func testPredictDefaultsAndGateFlags() throws {
        let plain = try Parsing.parse(["predict", ckpt])
        XCTAssertEqual(try plain.value("gates.rule", as: TrainingMetadata.TestTimeRule?.self), nil)
        XCTAssertEqual(try plain.value("gates.drop", as: String?.self), nil)
        XCTAssertEqual(try plain.value("gates.gates", as: String?.self), nil)
        XCTAssertEqual(try plain.value("output", as: String?.self), nil)
        XCTAssertEqual(try plain.value("runtime.batchSize", as: Int.self), 256)

        let set = try Parsing.parse(["predict", ckpt, "--rule", "expectation", "--drop", "3,7,10-12", "-o", "out.h5"])
        XCTAssertEqual(try set.value("gates.rule", as: TrainingMetadata.TestTimeRule?.self), .expectation)
        XCTAssertEqual(try set.value("gates.drop", as: String?.self), "3,7,10-12")
        XCTAssertEqual(try set.value("output", as: String?.self), "out.h5")
        let gates = try Parsing.parse(["predict", ckpt, "--gates", "1,0,0.5", "--drop", "2", "--output", "p.csv"])
        XCTAssertEqual(try gates.value("gates.gates", as: String?.self), "1,0,0.5")
        XCTAssertEqual(try gates.value("output", as: String?.self), "p.csv")
        XCTAssertEqual(try Parsing.parse(["predict", ckpt, "-o", "p.hdf5"]).value("output", as: String?.self), "p.hdf5")
    }

    func testPredictRefusesConflictingOrMalformedGates() {
        Parsing.assertRefused(["predict", ckpt, "--gates", "1,1", "--rule", "inverted"], "Give --gates or --rule, not both.")
        Parsing.assertRefused(["predict", ckpt, "--gates", "1,x,1"], "--gates: entry 2 ('x') is not a finite number.")
        Parsing.assertRefused(["predict", ckpt, "--gates", "1,nan"], "--gates: entry 2 ('nan') is not a finite number.")
        Parsing.assertRefused(["predict", ckpt, "--drop", "3-x"], "--drop: '3-x' is not a block number or a range like 3-5.")
        Parsing.assertRefused(["predict", ckpt, "--drop", "5-3"], "--drop: '5-3' is not a block number or a range like 3-5.")
        Parsing.assertRefused(["predict", ckpt, "--drop", "2,,3"], "--drop: '' is not a block number or a range like 3-5.")
        Parsing.assertRefused(["predict", ckpt, "-o", "logits.txt"], "--output must end in .csv, .h5 or .hdf5, found 'logits.txt'.")
    }

    // MARK: the analyses' shared options

    func testAnalysisOptionsDefaults() throws {
        let sample = try Parsing.parse(["sample", ckpt])
        XCTAssertEqual(sample.name, "sample")
        XCTAssertEqual(try sample.value("options.checkpoint", as: String.self), ckpt)
        XCTAssertEqual(try sample.value("options.schedule", as: String?.self), nil)
        XCTAssertEqual(try sample.value("options.rule", as: TrainingMetadata.TestTimeRule?.self), nil)
        XCTAssertEqual(try sample.value("options.metrics", as: [String].self), [])
        XCTAssertEqual(try sample.value("options.seed", as: UInt64.self), 0)
        XCTAssertEqual(try sample.value("options.output", as: String?.self), nil)
        XCTAssertEqual(try sample.value("options.json", as: Bool.self), false)
        XCTAssertEqual(try sample.value("options.quiet", as: Bool.self), false)
        XCTAssertEqual(try sample.value("options.resume", as: Bool.self), false)
        XCTAssertEqual(try sample.value("options.plugins.libraries", as: [String].self), [])
        XCTAssertEqual(try sample.value("options.runtime.batchSize", as: Int.self), 256)
        XCTAssertEqual(try sample.value("options.data.offset", as: Int.self), 0)
    }

    func testAnalysisOptionsParseEveryFlagAndKeepRepeatedOnesInOrder() throws {
        let sample = try Parsing.parse([
            "sample", ckpt, "--schedule", "linear:pL=0.8", "--rule", "inverted", "--metric", "nll", "--metric", "calibration:bins=10",
            "--seed", "18446744073709551615", "-o", "out", "--json", "--quiet", "--resume", "--plugin", "a.so", "--plugin", "b.so",
            "--batch-size", "8", "--data", "d.h5", "--limit", "40",
        ])
        XCTAssertEqual(try sample.value("options.schedule", as: String?.self), "linear:pL=0.8")
        XCTAssertEqual(try sample.value("options.rule", as: TrainingMetadata.TestTimeRule?.self), .inverted)
        XCTAssertEqual(try sample.value("options.metrics", as: [String].self), ["nll", "calibration:bins=10"])
        XCTAssertEqual(try sample.value("options.seed", as: UInt64.self), .max)
        XCTAssertEqual(try sample.value("options.output", as: String?.self), "out")
        XCTAssertEqual(try sample.value("options.json", as: Bool.self), true)
        XCTAssertEqual(try sample.value("options.quiet", as: Bool.self), true)
        XCTAssertEqual(try sample.value("options.resume", as: Bool.self), true)
        XCTAssertEqual(try sample.value("options.plugins.libraries", as: [String].self), ["a.so", "b.so"])
        XCTAssertEqual(try sample.value("options.runtime.batchSize", as: Int.self), 8)
        XCTAssertEqual(try sample.value("options.data.data", as: String?.self), "d.h5")
        XCTAssertEqual(try sample.value("options.data.limit", as: Int?.self), 40)
        XCTAssertEqual(try Parsing.parse(["paths", ckpt, "--output", "p"]).value("options.output", as: String?.self), "p")
    }

    func testAnalysisOptionsRefuseBadValues() {
        Parsing.assertRefused(["sample", ckpt, "--seed=-1"], "The value '-1' is invalid for '--seed <seed>'")
        Parsing.assertRefused(["sample", ckpt, "--seed", "18446744073709551616"],
                              "The value '18446744073709551616' is invalid for '--seed <seed>'")
        Parsing.assertRefused(["paths", ckpt, "--rule", "identity"],
                              "The value 'identity' is invalid for '--rule <rule>'. Please provide one of 'expectation' and 'inverted'.")
        Parsing.assertRefused(["depth", ckpt, "--batch-size=-8"], "--batch-size must be positive.")
        Parsing.assertRefused(["reorder", ckpt, "--limit", "0"], "--limit must be positive.")
    }

    // MARK: sample

    func testSampleMembersAndRecalibration() throws {
        let plain = try Parsing.parse(["sample", ckpt])
        XCTAssertEqual(try plain.value("members", as: Int.self), 32)
        XCTAssertEqual(try plain.value("recalibration.recalibrate", as: Int?.self), nil)
        XCTAssertEqual(try plain.value("recalibration.recalibrationData", as: String?.self), nil)
        let set = try Parsing.parse(["sample", ckpt, "--members", "1", "--recalibrate", "2", "--recalibration-data", "train.h5"])
        XCTAssertEqual(try set.value("members", as: Int.self), 1)
        XCTAssertEqual(try set.value("recalibration.recalibrate", as: Int?.self), 2)
        XCTAssertEqual(try set.value("recalibration.recalibrationData", as: String?.self), "train.h5")

        Parsing.assertRefused(["sample", ckpt, "--members", "0"], "--members must be at least 1.")
        Parsing.assertRefused(["sample", ckpt, "--members", "a"], "The value 'a' is invalid for '--members <members>'")
        Parsing.assertRefused(["sample", ckpt, "--recalibrate", "1"],
                              "--recalibrate needs at least 2 images (a batch of one has no variance), found 1.")
        Parsing.assertRefused(["sample", ckpt, "--recalibration-data", "train.h5"], "--recalibration-data needs --recalibrate N.")
    }

    // MARK: ensemble

    func testEnsembleMembersAndGranularity() throws {
        let plain = try Parsing.parse(["ensemble", ckpt])
        XCTAssertEqual(try plain.value("members", as: Int.self), 16)
        XCTAssertEqual(try plain.value("granularity", as: EnsembleAnalysis.Granularity.self), .pass)
        for granularity in EnsembleAnalysis.Granularity.allCases {
            let set = try Parsing.parse(["ensemble", ckpt, "--granularity", granularity.rawValue, "--members", "3"])
            XCTAssertEqual(try set.value("granularity", as: EnsembleAnalysis.Granularity.self), granularity)
            XCTAssertEqual(try set.value("members", as: Int.self), 3)
        }
        Parsing.assertRefused(["ensemble", ckpt, "--members=-3"], "--members must be at least 1.")
        Parsing.assertRefused(["ensemble", ckpt, "--granularity", "example"],
                              "The value 'example' is invalid for '--granularity <granularity>'. Please provide one of 'pass', 'batch' or 'sample'.")
        // Ensemble has no recalibration: the flag is unknown rather than ignored.
        Parsing.assertRefused(["ensemble", ckpt, "--recalibrate", "8"], "Unknown option '--recalibrate'")
    }

    // MARK: lesion

    func testLesionDefaults() throws {
        let lesion = try Parsing.parse(["lesion", ckpt])
        XCTAssertEqual(try lesion.value("single", as: Bool.self), false)
        XCTAssertEqual(try lesion.value("randomK", as: Int?.self), nil)
        XCTAssertEqual(try lesion.value("trialOptions.trials", as: Int?.self), nil, "adaptive trials by default")
        XCTAssertEqual(try lesion.value("trialOptions.ciWidth", as: Double.self), 0.04)
        XCTAssertEqual(try lesion.value("trialOptions.maxTrials", as: Int.self), 60)
        XCTAssertEqual(try lesion.value("drop", as: [String].self), [])
        XCTAssertEqual(try lesion.value("keep", as: [String].self), [])
        XCTAssertEqual(try lesion.value("pruneDepth", as: [Int].self), [])
        XCTAssertEqual(try lesion.value("pruneRule", as: String?.self), nil)
        XCTAssertEqual(try lesion.value("heldOut", as: Int?.self), nil)
        XCTAssertEqual(try lesion.value("recalibration.recalibrate", as: Int?.self), nil)
    }

    func testLesionParsesEverySelectionAndKeepsRepeatedListsInOrder() throws {
        let lesion = try Parsing.parse([
            "lesion", ckpt, "--single", "--random-k", "0", "--trials", "2", "--drop", "3", "--drop", "1,4-5", "--keep", "2-6",
            "--prune-depth", "4", "--prune-depth", "2", "--prune-rule", "greedy", "--held-out", "100", "--recalibrate", "64",
        ])
        XCTAssertEqual(try lesion.value("single", as: Bool.self), true)
        XCTAssertEqual(try lesion.value("randomK", as: Int?.self), 0)
        XCTAssertEqual(try lesion.value("trialOptions.trials", as: Int?.self), 2)
        XCTAssertEqual(try lesion.value("drop", as: [String].self), ["3", "1,4-5"])
        XCTAssertEqual(try lesion.value("keep", as: [String].self), ["2-6"])
        XCTAssertEqual(try lesion.value("pruneDepth", as: [Int].self), [4, 2])
        XCTAssertEqual(try lesion.value("pruneRule", as: String?.self), "greedy")
        XCTAssertEqual(try lesion.value("heldOut", as: Int?.self), 100)
        XCTAssertEqual(try lesion.value("recalibration.recalibrate", as: Int?.self), 64)
    }

    func testLesionRefusesBadSelectionsAndSettingsThatWouldBeIgnored() {
        Parsing.assertRefused(["lesion", ckpt, "--random-k=-1"], "--random-k must be zero or more.")
        Parsing.assertRefused(["lesion", ckpt, "--trials", "0"], "--trials must be at least 1.")
        Parsing.assertRefused(["lesion", ckpt, "--drop", "1", "--drop", "3-x"], "--drop: '3-x' is not a block number or a range like 3-5.")
        Parsing.assertRefused(["lesion", ckpt, "--keep", "a"], "--keep: 'a' is not a block number or a range like 3-5.")
        Parsing.assertRefused(["lesion", ckpt, "--prune-rule", "greedy"], "--prune-rule needs --prune-depth.")
        Parsing.assertRefused(["lesion", ckpt, "--prune-depth", "3", "--held-out", "10"], "--held-out needs --prune-rule greedy.")
        Parsing.assertRefused(["lesion", ckpt, "--prune-depth", "3", "--prune-rule", "every-other", "--held-out", "10"],
                              "--held-out needs --prune-rule greedy.")
        Parsing.assertRefused(["lesion", ckpt, "--prune-depth", "three"], "The value 'three' is invalid for '--prune-depth <d>'")
        Parsing.assertRefused(["lesion", ckpt, "--recalibration-data", "t.h5"], "--recalibration-data needs --recalibrate N.")
    }

    // MARK: depth

    func testDepthDefaultsFlagsAndBadValues() throws {
        let plain = try Parsing.parse(["depth", ckpt])
        XCTAssertEqual(try plain.value("depths", as: String?.self), nil)
        XCTAssertEqual(try plain.value("trialOptions.trials", as: Int?.self), nil, "adaptive trials by default")
        XCTAssertEqual(try plain.value("trialOptions.ciWidth", as: Double.self), 0.04)
        XCTAssertEqual(try plain.value("trialOptions.maxTrials", as: Int.self), 60)
        let set = try Parsing.parse(["depth", ckpt, "--depths", "0,2-4", "--trials", "1", "--recalibrate", "16"])
        XCTAssertEqual(try set.value("depths", as: String?.self), "0,2-4")
        XCTAssertEqual(try set.value("trialOptions.trials", as: Int?.self), 1)
        XCTAssertEqual(try set.value("recalibration.recalibrate", as: Int?.self), 16)

        Parsing.assertRefused(["depth", ckpt, "--trials", "0"], "--trials must be at least 1.")
        Parsing.assertRefused(["depth", ckpt, "--depths", "0,x"], "--depths: 'x' is not a block number or a range like 3-5.")
    }

    // MARK: reorder

    func testReorderDefaultsFlagsAndBadValues() throws {
        let plain = try Parsing.parse(["reorder", ckpt])
        XCTAssertEqual(try plain.value("swaps", as: String.self), "0,1,2,4,8,16")
        XCTAssertEqual(try plain.value("trials", as: Int.self), 3)
        let set = try Parsing.parse(["reorder", ckpt, "--swaps", "1,3", "--trials", "2"])
        XCTAssertEqual(try set.value("swaps", as: String.self), "1,3")
        XCTAssertEqual(try set.value("trials", as: Int.self), 2)

        Parsing.assertRefused(["reorder", ckpt, "--trials", "0"], "--trials must be at least 1.")
        Parsing.assertRefused(["reorder", ckpt, "--swaps", "1,two"], "--swaps: 'two' is not a block number or a range like 3-5.")
        Parsing.assertRefused(["reorder", ckpt, "--recalibrate", "8"], "Unknown option '--recalibrate'")
    }

    // MARK: paths

    func testPathsTakesTheSharedOptionsOnly() throws {
        let paths = try Parsing.parse(["paths", ckpt, "--schedule", "constant:p=0.9"])
        XCTAssertEqual(paths.name, "paths")
        XCTAssertEqual(try paths.value("options.schedule", as: String?.self), "constant:p=0.9")
        Parsing.assertRefused(["paths", ckpt, "--members", "4"], "Unknown option '--members'")
        // Shared options that would choose data, metrics, draws or a resume do not apply: refused, not dropped.
        Parsing.assertRefused(["paths", ckpt, "--data", "x.h5", "--metric", "nll", "--resume"],
                              "--data, --metric, --resume: paths evaluates no network (it needs only the checkpoint and a schedule), so this does not apply")
        Parsing.assertRefused(["paths", ckpt, "--seed", "3"],
                              "--seed: paths evaluates no network (it needs only the checkpoint and a schedule), so this does not apply")
    }

    // MARK: report

    func testReportDefaultsAndFlags() throws {
        let plain = try Parsing.parse(["report", ckpt])
        XCTAssertEqual(try plain.value("maxK", as: Int.self), 10)
        XCTAssertEqual(try plain.value("trialOptions.trials", as: Int?.self), nil, "adaptive trials by default")
        XCTAssertEqual(try plain.value("trialOptions.ciWidth", as: Double.self), 0.04)
        XCTAssertEqual(try plain.value("trialOptions.maxTrials", as: Int.self), 60)
        XCTAssertEqual(try plain.value("members", as: Int.self), 8)
        XCTAssertEqual(try plain.value("options.data.limit", as: Int?.self), nil, "the 2,000-image limit is applied at run time")
        let set = try Parsing.parse(["report", ckpt, "--max-k", "0", "--trials", "1", "--members", "1", "--limit", "10000"])
        XCTAssertEqual(try set.value("maxK", as: Int.self), 0)
        XCTAssertEqual(try set.value("trialOptions.trials", as: Int?.self), 1)
        XCTAssertEqual(try set.value("members", as: Int.self), 1)
        XCTAssertEqual(try set.value("options.data.limit", as: Int?.self), 10000)
    }

    /// Before, `--max-k -1` crashed (a range 0...-1) after the run had started,
    /// `--members 0` failed only after the lesion part, leaving a progress file that the
    /// next run took for an interrupted one, and `--trials 0` silently left out the
    /// k-block lesions and the depth part.
    func testReportRefusesCountsTheOtherAnalysesRefuse() {
        Parsing.assertRefused(["report", ckpt, "--max-k=-1"], "--max-k must be zero or more.")
        Parsing.assertRefused(["report", ckpt, "--trials", "0"], "--trials must be at least 1.")
        Parsing.assertRefused(["report", ckpt, "--members", "0"], "--members must be at least 1.")
    }

    // MARK: schedule and plugins

    func testScheduleNeedsASpecAndACheckpoint() throws {
        let schedule = try Parsing.parse(["schedule", "linear:pL=0.5", "--checkpoint", ckpt])
        XCTAssertEqual(try schedule.value("spec", as: String.self), "linear:pL=0.5")
        XCTAssertEqual(try schedule.value("checkpoint", as: String.self), ckpt)
        XCTAssertEqual(try schedule.value("json", as: Bool.self), false)
        XCTAssertEqual(try schedule.value("plugins.libraries", as: [String].self), [])
        let set = try Parsing.parse(["schedule", "cosine", "--checkpoint", ckpt, "--json", "--plugin", "c.so", "--arch", "timm/resnet18"])
        XCTAssertEqual(try set.value("json", as: Bool.self), true)
        XCTAssertEqual(try set.value("plugins.libraries", as: [String].self), ["c.so"], "schedules are looked up at run time, after --plugin")
        XCTAssertEqual(try set.value("architecture.arch", as: String?.self), "timm/resnet18")

        Parsing.assertRefused(["schedule", "linear"], "Missing expected argument '--checkpoint <checkpoint>'")
        Parsing.assertRefused(["schedule", "--checkpoint", ckpt], "Missing expected argument '<name-or-spec>'")
    }

    func testScheduleHelpDescribesEveryRegisteredSchedule() throws {
        let help = Parsing.root.helpMessage(for: try Parsing.subcommand("schedule"), columns: 1000)
        XCTAssertTrue(help.contains("USAGE: depthlens schedule <name-or-spec> --checkpoint <checkpoint> [--arch <library/model>] [--json] [--plugin <lib.so> ...]"), help)
        for schedule in PluginRegistry.shared.schedules {
            XCTAssertTrue(help.contains("\(schedule.name) [built in]: \(schedule.summary)."), "\(schedule.name) missing: \(help)")
            for parameter in schedule.parameters {
                XCTAssertTrue(help.contains("\(parameter.synopsis): \(parameter.help)"), "\(parameter.name) of \(schedule.name)")
            }
        }
        XCTAssertTrue(help.contains("Every schedule also takes only=<text> (default all): "), help)
    }

    func testPluginsTakesOnlyPluginLibraries() throws {
        let plugins = try Parsing.parse(["plugins", "--plugin", "a.so", "--plugin", "b.so"])
        XCTAssertEqual(try plugins.value("plugins.libraries", as: [String].self), ["a.so", "b.so"])
        Parsing.assertRefused(["plugins", "--json"], "Unknown option '--json'")
        Parsing.assertRefused(["plugins", "linear"], "Unexpected argument 'linear'")
    }

    // MARK: bench (hidden)

    func testBenchDefaultsAndFlags() throws {
        let plain = try Parsing.parse(["bench", ckpt, "--data", "d.h5"])
        XCTAssertEqual(try plain.value("data", as: String.self), "d.h5")
        XCTAssertEqual(try plain.value("batchSize", as: Int.self), 256)
        XCTAssertEqual(try plain.value("threads", as: Int.self), 2)
        XCTAssertEqual(try plain.value("repeats", as: Int.self), 5)
        XCTAssertEqual(try plain.value("images", as: Int.self), 512)
        XCTAssertEqual(try plain.value("backend", as: String.self), "fast")
        XCTAssertEqual(try plain.value("lesions", as: Bool.self), false)
        let set = try Parsing.parse(["bench", ckpt, "--data", "d.h5", "--batch-size", "16", "--threads", "1", "--repeats", "1",
                                     "--images", "64", "--backend", "reference", "--lesions"])
        XCTAssertEqual(try set.value("batchSize", as: Int.self), 16)
        XCTAssertEqual(try set.value("threads", as: Int.self), 1)
        XCTAssertEqual(try set.value("repeats", as: Int.self), 1)
        XCTAssertEqual(try set.value("images", as: Int.self), 64)
        XCTAssertEqual(try set.value("backend", as: String.self), "reference")
        XCTAssertEqual(try set.value("lesions", as: Bool.self), true)
        Parsing.assertRefused(["bench", ckpt], "Missing expected argument '--data <data>'")
    }

    /// Before, `--repeats 0` and `--batch-size 0` crashed (an empty median, a division by
    /// zero) after loading the data and the network, and an unknown backend was found only
    /// then.
    func testBenchRefusesCountsThatCannotBeTimedAndUnknownBackends() {
        let base = ["bench", ckpt, "--data", "d.h5"]
        Parsing.assertRefused(base + ["--repeats", "0"], "--repeats must be at least 1.")
        Parsing.assertRefused(base + ["--batch-size", "0"], "--batch-size must be positive.")
        Parsing.assertRefused(base + ["--threads", "0"], "--threads must be positive.")
        Parsing.assertRefused(base + ["--backend", "gpu"], "--backend must be reference or fast.")
    }
}
