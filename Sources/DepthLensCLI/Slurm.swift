import ArgumentParser
import DepthLens
import Foundation

struct Slurm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an analysis on a Slurm cluster: an sbatch array of N shards (--shard K/N) and a merge job that waits for them.",
        usage: "depthlens slurm <analysis> <checkpoint> [analysis options] --tasks <N> [--partition <p>] [--time <t>] [--cpus-per-task <c>] [--account <a>] [--sbatch-option=<opt> ...] [--dry-run]",
        discussion: """
            Writes <output>/slurm/array.sbatch (task i runs shard i+1 of N, with --requeue: a preempted or \
            requeued task continues from its shard's journal) and <output>/slurm/merge.sbatch (depthlens \
            merge), submits the first with `sbatch --parsable` and the second with \
            --dependency=afterok:<array job>, and prints both job ids. --dry-run prints the scripts and \
            submits nothing. Any other sbatch option: --sbatch-option=--mem=8G (repeatable; the leading \
            dashes may be left out). The analysis options are those of the analysis itself; the jobs \
            run this depthlens binary, by its absolute path, in the current directory. See docs/scale-out.md.
            """)

    @Option(help: "Array tasks: the number of shards N.")
    var tasks: Int

    @Option(help: "sbatch --partition of both jobs.")
    var partition: String?

    @Option(help: "sbatch --time of each job (such as 2:00:00).")
    var time: String?

    @Option(help: "sbatch --cpus-per-task of each array task (also the analysis' --threads unless given).")
    var cpusPerTask: Int?

    @Option(help: "sbatch --account of both jobs.")
    var account: String?

    @Option(name: .customLong("sbatch-option"), help: ArgumentHelp("Any other sbatch option for both jobs, as --sbatch-option=--mem=8G; repeatable.", valueName: "option"))
    var sbatchOptions: [String] = []

    @Flag(help: "Print the scripts and the sbatch commands; submit nothing, write nothing.")
    var dryRun = false

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The analysis and its arguments, such as: report model.h5 --limit 10000 -o results/study.", valueName: "analysis"))
    var analysisArguments: [String] = []

    static let analyses = ["sample", "ensemble", "lesion", "depth", "reorder", "report"]

    func validate() throws {
        guard tasks >= 1 else { throw ValidationError("--tasks must be at least 1 (got \(tasks)).") }
        if let cpusPerTask, cpusPerTask < 1 { throw ValidationError("--cpus-per-task must be at least 1.") }
        guard let analysis = analysisArguments.first else {
            throw ValidationError("name the analysis to run: one of \(Self.analyses.joined(separator: ", ")).")
        }
        guard Self.analyses.contains(analysis) else {
            throw ValidationError("'\(analysis)' is not an analysis that shards; give one of \(Self.analyses.joined(separator: ", ")).")
        }
        for own in ["--shard", "--resume", "--dry-run", "--merge-replay"] where analysisArguments.contains(where: { $0 == own || $0.hasPrefix(own + "=") }) {
            throw ValidationError("\(own): the Slurm jobs set it themselves; leave it out.")
        }
        // The analysis' own flags, checked now rather than in N failed tasks.
        do {
            _ = try DepthLensCommand.parseAsRoot(analysisArguments + ["--shard", "1/\(tasks)"])
        } catch {
            throw ValidationError("\(analysis): \(DepthLensCommand.message(for: error))")
        }
    }

    func run() throws {
        let jobs = SlurmJobs(analysisArguments: analysisArguments, tasks: tasks, partition: partition, time: time,
                             cpusPerTask: cpusPerTask, account: account, extra: sbatchOptions,
                             binary: SlurmJobs.runningBinary(), directory: FileManager.default.currentDirectoryPath)
        if dryRun {
            print("# \(jobs.arrayScriptPath)\n\(jobs.arrayScript)\n# \(jobs.mergeScriptPath)\n\(jobs.mergeScript)")
            print("# submitted with:\nsbatch --parsable \(jobs.arrayScriptPath)\nsbatch --parsable --dependency=afterok:<array job id> \(jobs.mergeScriptPath)")
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: jobs.slurmFolder, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot create \(jobs.slurmFolder): \(error.localizedDescription)")
        }
        try AtomicFile.write(Data(jobs.arrayScript.utf8), to: jobs.arrayScriptPath)
        try AtomicFile.write(Data(jobs.mergeScript.utf8), to: jobs.mergeScriptPath)
        let array = try SlurmJobs.sbatch(["--parsable", jobs.arrayScriptPath])
        let merge = try SlurmJobs.sbatch(["--parsable", "--dependency=afterok:\(array)", jobs.mergeScriptPath])
        print("array job \(array): \(tasks) task(s), shard K/\(tasks) into \(jobs.output)/shard-K-of-\(tasks) (logs in \(jobs.slurmFolder))")
        print("merge job \(merge): after every task succeeds (afterok:\(array)), results into \(jobs.output)")
        // A failed task leaves the merge's dependency never satisfied, even once the task has
        // run again; naming the tasks anew makes Slurm test it again.
        let tasks = (0..<self.tasks).map { "\(array)_\($0)" }.joined(separator: ":")
        print("a failed task i (shard i+1) runs again alone, continuing from its journal, with: scontrol requeue \(array)_i")
        print("and the merge then waits for it with: scontrol update JobId=\(merge) Dependency=afterok:\(tasks)")
    }
}

/// The two sbatch scripts of a sharded analysis.
struct SlurmJobs {
    var analysisArguments: [String]
    var tasks: Int
    var partition: String?
    var time: String?
    var cpusPerTask: Int?
    var account: String?
    var extra: [String]
    var binary: String
    var directory: String

    var analysis: String { analysisArguments[0] }

    /// The analysis' output folder (its -o, or its default).
    var output: String {
        var i = 0
        while i < analysisArguments.count {
            let a = analysisArguments[i]
            if a == "-o" || a == "--output", i + 1 < analysisArguments.count { return analysisArguments[i + 1] }
            if a.hasPrefix("--output=") { return String(a.dropFirst("--output=".count)) }
            i += 1
        }
        return "results/\(analysis)"
    }

    /// Where the scripts and logs go: `<output>/slurm`, absolute.
    var slurmFolder: String { URL(fileURLWithPath: output, relativeTo: URL(fileURLWithPath: directory + "/")).standardizedFileURL.path + "/slurm" }
    var arrayScriptPath: String { "\(slurmFolder)/array.sbatch" }
    var mergeScriptPath: String { "\(slurmFolder)/merge.sbatch" }

    /// The `#SBATCH` lines both jobs share.
    private var common: [String] {
        var lines = ["--chdir=\(directory)"]
        if let partition { lines.append("--partition=\(partition)") }
        if let time { lines.append("--time=\(time)") }
        if let account { lines.append("--account=\(account)") }
        lines += extra.map { $0.hasPrefix("-") ? $0 : "--" + $0 }
        return lines
    }

    var arrayScript: String {
        var options = ["--job-name=depthlens-\(analysis)", "--array=0-\(tasks - 1)", "--requeue", "--open-mode=append",
                       "--output=\(slurmFolder)/shard-%a.out"]
        if let cpusPerTask { options.append("--cpus-per-task=\(cpusPerTask)") }
        options += common
        var line = ([binary] + analysisArguments).map(Self.quote).joined(separator: " ")
        if cpusPerTask != nil, !analysisArguments.contains(where: { $0 == "--threads" || $0.hasPrefix("--threads=") }) {
            line += " --threads \"$SLURM_CPUS_PER_TASK\""
        }
        return """
            #!/bin/bash
            # depthlens slurm: array task i computes shard i+1 of \(tasks) into \(output)/shard-<i+1>-of-\(tasks).
            # --requeue: a preempted or requeued task starts again and continues from its shard's journal.
            \(options.map { "#SBATCH \($0)" }.joined(separator: "\n"))
            set -eu
            exec \(line) --shard "$((SLURM_ARRAY_TASK_ID + 1))/\(tasks)"

            """
    }

    var mergeScript: String {
        let options = ["--job-name=depthlens-\(analysis)-merge", "--output=\(slurmFolder)/merge.out"] + common
        let shards = (1...tasks).map { "\(output)/shard-\($0)-of-\(tasks)" }
        return """
            #!/bin/bash
            # depthlens slurm: joins the \(tasks) shards into \(output) once every array task succeeded
            # (submitted with --dependency=afterok:<array job id>).
            \(options.map { "#SBATCH \($0)" }.joined(separator: "\n"))
            set -eu
            exec \(([binary, "merge", output] + shards).map(Self.quote).joined(separator: " "))

            """
    }

    /// A word for bash, single-quoted unless it is plainly safe.
    static func quote(_ word: String) -> String {
        if !word.isEmpty, word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The absolute path of this process' executable: the jobs run this very binary.
    static func runningBinary() -> String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    /// Runs `sbatch` with `arguments`; returns the job id it prints (`--parsable`: `ID` or `ID;cluster`).
    static func sbatch(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sbatch"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            throw CLIError("sbatch: cannot run it: \(error.localizedDescription)")
        }
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = errors.trimmingCharacters(in: .whitespacesAndNewlines)
            throw CLIError("sbatch \(arguments.joined(separator: " ")): failed (exit \(process.terminationStatus))\(reason.isEmpty ? "" : ": \(reason)")")
        }
        guard let id = output.split(separator: "\n").first?.split(separator: ";").first.map(String.init), Int(id) != nil else {
            throw CLIError("sbatch \(arguments.joined(separator: " ")): printed no job id ('\(output.trimmingCharacters(in: .whitespacesAndNewlines))')")
        }
        return id
    }
}
