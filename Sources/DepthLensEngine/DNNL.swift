import CDNNL
import DepthLensFormats
import DepthLensModel
import Foundation

/// The thin layer over oneDNN that the fused engine uses: one CPU engine for the
/// process, direct convolutions on blocked activations (`nChw16c` or `nChw8c`) with
/// fused post-ops, cached by shape, and weights reordered into each primitive's format.
///
/// Threads: the batch is split into chunks that worker threads take in turn, and every
/// convolution runs on its worker alone (one OpenMP thread; oneDNN's own threads are
/// never started). Measured on the shared two-core machine, a convolution split across
/// two OpenMP threads stalls at its barrier whenever another process holds one core
/// (1 ms runs became 10-16 ms); independent chunks let the other worker go on. Each
/// worker has its own stream and scratchpad, so primitives are shared safely.
final class DNNL: @unchecked Sendable {
    /// Nil when oneDNN cannot create a CPU engine; the evaluator then falls back to the
    /// reference kernels.
    static let shared: DNNL? = DNNL()

    let engine: dnnl_engine_t
    /// The widest channel block oneDNN has JIT convolutions for on this CPU: 16
    /// (`nChw16c`) with AVX-512, 8 (`nChw8c`) with SSE4.1, AVX or AVX2. Any other layout
    /// falls to oneDNN's reference convolution ("ref:any"), which on an AVX2-only EPYC
    /// made a 500-image evaluation take 20 minutes instead of under a second.
    let widestBlock: Int
    private let lock = NSLock()
    private var primitives: [ConvolutionShape: ConvolutionPrimitive] = [:]
    /// Activation buffers kept between passes (page faults on fresh buffers cost as much
    /// as a small batch's convolutions); bounded by ``retainedBytes``.
    private var freeBuffers: [ActivationBuffer] = []
    private static let retainedBytes = 64 << 20

    private init?() {
        // Without SSE4.1 oneDNN has only reference convolutions; the Swift reference
        // kernels are faster than those.
        guard let block = Self.channelBlock(isa: dnnl_get_effective_cpu_isa()) else { return nil }
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        self.engine = engine
        widestBlock = block
    }

    /// The channel block with JIT convolutions under `isa`, or nil when there is none.
    static func channelBlock(isa: dnnl_cpu_isa_t) -> Int? {
        // The ISA values are bit sets: each includes the bits of the ones it extends.
        func has(_ feature: dnnl_cpu_isa_t) -> Bool { isa.rawValue & feature.rawValue == feature.rawValue }
        if has(dnnl_cpu_isa_avx512_core) { return 16 }
        if has(dnnl_cpu_isa_sse41) { return 8 }
        return nil
    }

    /// Calls `body(worker, chunk)` for consecutive chunks of `count` items, `chunk` items
    /// each, on up to `threads` threads; each worker takes the next chunk when it is done.
    /// `start` makes a worker's state once per thread.
    ///
    /// When there are fewer chunks than threads (a batch of one image on two threads), each
    /// worker also gets a ``Lane``: a second thread that runs half of every convolution's
    /// output channels (see ``Worker/helper``), so the spare core works inside the layer.
    func forEachChunk<State>(count: Int, chunk: Int, threads: Int, start: @Sendable (Worker) -> State,
                             _ body: @Sendable (State, Range<Int>) -> Void) {
        let chunks = (count + chunk - 1) / chunk
        let next = ChunkCounter()
        let workers = max(1, min(threads, chunks))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let worker = Worker(dnnl: self)
            if threads >= 2 * workers { worker.helper = Lane(dnnl: self) }
            defer { worker.finish() }
            let state = start(worker)
            while let c = next.take(below: chunks) {
                body(state, (c * chunk)..<min(count, (c + 1) * chunk))
            }
        }
    }

    /// The convolution primitive for `shape`, created on first use.
    func primitive(_ shape: ConvolutionShape) -> ConvolutionPrimitive {
        lock.lock()
        defer { lock.unlock() }
        if let cached = primitives[shape] { return cached }
        let created = ConvolutionPrimitive(shape: shape, engine: engine)
        primitives[shape] = created
        return created
    }

    fileprivate func takeBuffer(_ count: Int) -> ActivationBuffer {
        lock.lock()
        defer { lock.unlock() }
        let fitting = freeBuffers.indices.filter { freeBuffers[$0].capacity >= count }
        if let i = fitting.min(by: { freeBuffers[$0].capacity < freeBuffers[$1].capacity }) {
            return freeBuffers.remove(at: i)
        }
        return ActivationBuffer(capacity: count)
    }

    fileprivate func returnBuffers(_ buffers: [ActivationBuffer]) {
        lock.lock()
        defer { lock.unlock() }
        var bytes = 0
        freeBuffers = (freeBuffers + buffers).sorted { $0.capacity > $1.capacity }.filter {
            bytes += $0.capacity * 4
            return bytes <= DNNL.retainedBytes
        }
    }

    /// One thread's means to run primitives: a stream, a scratchpad and buffers.
    final class Worker {
        let dnnl: DNNL
        /// A second thread that runs part of this worker's convolutions, or nil.
        fileprivate(set) var helper: Lane?
        private let stream: dnnl_stream_t
        private var scratchpad: ActivationBuffer
        private var taken: [ActivationBuffer] = []

        fileprivate init(dnnl: DNNL) {
            self.dnnl = dnnl
            var stream: dnnl_stream_t?
            check(dnnl_stream_create(&stream, dnnl.engine, dnnl_stream_default_flags.rawValue), "stream")
            self.stream = stream!
            // Kept between passes like the activation buffers: a fresh one each pass
            // page-faulted in every pass (at 224 x 224 a convolution's scratchpad is MBs).
            scratchpad = dnnl.takeBuffer(1 << 14)
            Self.singleThreaded()
        }

        /// oneDNN's OpenMP regions on this thread run on this thread alone.
        private static func singleThreaded() { _ = depthlens_omp_set_num_threads(1) }

        fileprivate func finish() {
            helper?.finish()
            helper = nil
            dnnl_stream_wait(stream)
            dnnl_stream_destroy(stream)
            dnnl.returnBuffers(taken + [scratchpad])
            taken.removeAll()
        }

        /// A buffer of at least `count` floats, valid until the worker finishes.
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let buffer = dnnl.takeBuffer(count)
            taken.append(buffer)
            return buffer.pointer
        }

        /// destination = post(conv(source) + bias) over `primitive.shape.batch` images.
        func execute(_ primitive: ConvolutionPrimitive, weights: PreparedWeights, source: UnsafePointer<Float>,
                     destination: UnsafeMutablePointer<Float>) {
            let engine = dnnl.engine
            if primitive.scratchpadBytes > scratchpad.capacity * 4 {
                scratchpad = ActivationBuffer(capacity: primitive.scratchpadBytes / 4 + 1)
            }
            var src: dnnl_memory_t?, dst: dnnl_memory_t?, pad: dnnl_memory_t?
            withUnsafePointer(to: primitive.sourceDescriptor) {
                check(dnnl_memory_create(&src, $0, engine, UnsafeMutableRawPointer(mutating: source)), "source memory")
            }
            withUnsafePointer(to: primitive.destinationDescriptor) {
                check(dnnl_memory_create(&dst, $0, engine, destination), "destination memory")
            }
            withUnsafePointer(to: primitive.scratchpadDescriptor) {
                check(dnnl_memory_create(&pad, $0, engine, scratchpad.pointer), "scratchpad memory")
            }
            defer {
                dnnl_memory_destroy(src)
                dnnl_memory_destroy(dst)
                dnnl_memory_destroy(pad)
            }
            let arguments = [
                dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: src),
                dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weights.weights),
                dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: weights.bias),
                dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dst),
                dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: pad),
            ]
            check(dnnl_primitive_execute(primitive.primitive, stream, Int32(arguments.count), arguments), "convolution")
        }

        /// `convolution`'s weights (times `scale`) in the format `primitive` wants.
        func prepareWeights(_ convolution: Convolution, scale: Float, for primitive: ConvolutionPrimitive) -> PreparedWeights {
            PreparedWeights(convolution, scale: scale, outChannels: primitive.shape.outChannels,
                            inChannels: primitive.shape.inChannels, groups: primitive.shape.groups,
                            descriptor: primitive.weightsDescriptor,
                            engine: dnnl.engine, stream: stream)
        }
    }
}

/// A thread that runs one convolution at a time for a worker, with a worker of its own
/// (stream, scratchpad, one OpenMP thread). It sleeps on a semaphore between jobs rather
/// than spinning: oneDNN's two OpenMP threads on one convolution spin at their barrier,
/// which on the shared two-core machine made a batch of one image 6x slower whenever
/// another process held a core (ResNet-50 at 224x224: 0.8 images/s against 5 with one
/// thread); a sleeping helper only costs the wake-up (tens of microseconds a layer).
final class Lane: @unchecked Sendable {
    private let start = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private var job: ((DNNL.Worker) -> Void)?
    private var stopping = false
    private var thread: Thread?

    fileprivate init(dnnl: DNNL) {
        let thread = Thread { [unowned self] in
            let worker = DNNL.Worker(dnnl: dnnl)
            while true {
                self.start.wait()
                if self.stopping { break }
                self.job?(worker)
                self.job = nil
                self.done.signal()
            }
            worker.finish()
            self.done.signal()
        }
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Starts `job` on the lane's thread; ``wait()`` returns when it is done.
    func run(_ job: @escaping (DNNL.Worker) -> Void) {
        self.job = job
        start.signal()
    }

    func wait() { done.wait() }

    fileprivate func finish() {
        stopping = true
        start.signal()
        done.wait()
        thread = nil
    }
}

/// The next chunk index, shared by the workers of one pass.
private final class ChunkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < limit else { return nil }
        next += 1
        return next - 1
    }
}

/// What a convolution primitive is specialised for.
struct ConvolutionShape: Hashable {
    enum PostOp: Hashable {
        case none, relu
        /// GELU, erf form.
        case gelu
        /// Accumulate into the destination (which holds the shortcut), then optionally ReLU.
        case sum, sumReLU
    }

    var batch: Int
    /// Channel counts as the primitive sees them: padded with zero channels up to a
    /// multiple of the block (oneDNN's fast kernels want whole blocks; the padded
    /// weights are zero, so the padded channels stay zero).
    var inChannels: Int
    var outChannels: Int
    var height: Int
    var width: Int
    var kernel: Int
    var stride: Int
    var padding: Int
    /// Channel block of the activations: 16 (`nChw16c`) or 8 (`nChw8c`).
    var block: Int
    /// The source is the user's NCHW images (the stem) rather than blocked activations.
    var plainSource: Bool
    var postOp: PostOp
    /// 1, or the (padded) channel count for a depthwise convolution: one group per channel.
    var groups: Int = 1

    var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
}

/// A created convolution primitive and the memory descriptors it runs on.
final class ConvolutionPrimitive: @unchecked Sendable {
    let shape: ConvolutionShape
    let primitive: dnnl_primitive_t
    let descriptor: dnnl_primitive_desc_t
    let sourceDescriptor: dnnl_memory_desc_t
    let destinationDescriptor: dnnl_memory_desc_t
    let weightsDescriptor: dnnl_memory_desc_t
    /// Each worker passes its own scratchpad, so one primitive may run on many threads.
    let scratchpadDescriptor: dnnl_memory_desc_t
    let scratchpadBytes: Int
    /// oneDNN's name for the implementation it chose, e.g. "jit:avx2" or "ref:any".
    let implementation: String

    init(shape s: ConvolutionShape, engine: dnnl_engine_t) {
        shape = s
        let blocked = s.block == 16 ? dnnl_nChw16c : dnnl_nChw8c
        func describe(_ dims: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
            var md = dnnl_memory_desc_t()
            let d = dims.map { dnnl_dim_t($0) }
            check(dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, dnnl_f32, tag), "memory descriptor")
            return md
        }
        var src = describe([s.batch, s.inChannels, s.height, s.width], s.plainSource ? dnnl_nchw : blocked)
        var weights = describe(s.groups == 1 ? [s.outChannels, s.inChannels, s.kernel, s.kernel]
                                   : [s.groups, s.outChannels / s.groups, s.inChannels / s.groups, s.kernel, s.kernel],
                               dnnl_format_tag_any)
        var bias = describe([s.outChannels], dnnl_x)
        var dst = describe([s.batch, s.outChannels, s.outHeight, s.outWidth], blocked)
        let strides: [dnnl_dim_t] = [dnnl_dim_t(s.stride), dnnl_dim_t(s.stride)]
        let padding: [dnnl_dim_t] = [dnnl_dim_t(s.padding), dnnl_dim_t(s.padding)]
        var desc = dnnl_convolution_desc_t()
        check(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &src, &weights,
                                                 &bias, &dst, strides, padding, padding), "convolution descriptor for \(s)")
        var attributes: dnnl_primitive_attr_t?
        var postOps: dnnl_post_ops_t?
        check(dnnl_primitive_attr_create(&attributes), "attributes")
        check(dnnl_post_ops_create(&postOps), "post-ops")
        defer {
            dnnl_post_ops_destroy(postOps)
            dnnl_primitive_attr_destroy(attributes)
        }
        switch s.postOp {
        case .none: break
        case .relu:
            check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_relu, 0, 0), "ReLU post-op")
        case .gelu:
            check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_gelu_erf, 0, 0), "GELU post-op")
        case .sum:
            check(dnnl_post_ops_append_sum(postOps, 1), "sum post-op")
        case .sumReLU:
            check(dnnl_post_ops_append_sum(postOps, 1), "sum post-op")
            check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_relu, 0, 0), "ReLU post-op")
        }
        check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "attach post-ops")
        check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "scratchpad mode")
        var pd: dnnl_primitive_desc_t?
        check(withUnsafePointer(to: &desc) { dnnl_primitive_desc_create(&pd, $0, attributes, engine, nil) },
              "convolution primitive descriptor for \(s)")
        var primitive: dnnl_primitive_t?
        check(dnnl_primitive_create(&primitive, pd), "convolution primitive")
        var name: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
        implementation = name.map { String(cString: $0) } ?? "unknown"
        self.descriptor = pd!
        self.primitive = primitive!
        sourceDescriptor = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0).pointee
        destinationDescriptor = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0).pointee
        weightsDescriptor = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0).pointee
        scratchpadDescriptor = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        scratchpadBytes = withUnsafePointer(to: scratchpadDescriptor) { dnnl_memory_desc_get_size($0) }
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }
}

/// A convolution's weights (reordered) and bias as oneDNN memory it owns.
final class PreparedWeights: @unchecked Sendable {
    let descriptor: dnnl_memory_desc_t
    let weights: dnnl_memory_t
    let bias: dnnl_memory_t

    /// - Parameters:
    ///   - scale: multiplies weights and bias (a gate on the residual branch).
    ///   - outChannels, inChannels: the padded counts; the extra weights and biases are zero.
    ///   - groups: 1, or the padded channel count of a depthwise convolution.
    init(_ conv: Convolution, scale: Float, outChannels: Int, inChannels: Int, groups: Int = 1,
         descriptor target: dnnl_memory_desc_t, engine: dnnl_engine_t, stream: dnnl_stream_t) {
        descriptor = target
        let area = conv.kernel * conv.kernel
        // Per output channel: its group's input channels (all of them, or one when depthwise).
        let perGroup = inChannels / groups, sourcePerGroup = conv.inChannelsPerGroup
        var weights = [Float](repeating: 0, count: outChannels * perGroup * area)
        var bias = [Float](repeating: 0, count: outChannels)
        for o in 0..<conv.outChannels {
            bias[o] = conv.bias[o] * scale
            for i in 0..<sourcePerGroup {
                for k in 0..<area {
                    weights[(o * perGroup + i) * area + k] = conv.weight[(o * sourcePerGroup + i) * area + k] * scale
                }
            }
        }
        var plain = dnnl_memory_desc_t(), biasDescriptor = dnnl_memory_desc_t()
        if groups == 1 {
            let dims = [outChannels, inChannels, conv.kernel, conv.kernel].map { dnnl_dim_t($0) }
            check(dnnl_memory_desc_init_by_tag(&plain, 4, dims, dnnl_f32, dnnl_oihw), "weights descriptor")
        } else {
            let dims = [groups, outChannels / groups, perGroup, conv.kernel, conv.kernel].map { dnnl_dim_t($0) }
            check(dnnl_memory_desc_init_by_tag(&plain, 5, dims, dnnl_f32, dnnl_goihw), "grouped weights descriptor")
        }
        check(dnnl_memory_desc_init_by_tag(&biasDescriptor, 1, [dnnl_dim_t(outChannels)], dnnl_f32, dnnl_x),
              "bias descriptor")
        var owned: dnnl_memory_t?, biasMemory: dnnl_memory_t?
        withUnsafePointer(to: target) {
            check(dnnl_memory_create(&owned, $0, engine, depthlens_dnnl_memory_allocate()), "weights memory")
        }
        check(dnnl_memory_create(&biasMemory, &biasDescriptor, engine, depthlens_dnnl_memory_allocate()), "bias memory")
        var handle: UnsafeMutableRawPointer?
        dnnl_memory_get_data_handle(biasMemory, &handle)
        bias.withUnsafeBytes { handle!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        weights.withUnsafeMutableBytes { raw in
            var source: dnnl_memory_t?
            check(dnnl_memory_create(&source, &plain, engine, raw.baseAddress), "plain weights memory")
            var reorderDescriptor: dnnl_primitive_desc_t?, reorder: dnnl_primitive_t?
            withUnsafePointer(to: target) {
                check(dnnl_reorder_primitive_desc_create(&reorderDescriptor, &plain, engine, $0, engine, nil), "weights reorder")
            }
            check(dnnl_primitive_create(&reorder, reorderDescriptor), "weights reorder primitive")
            let arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: source),
                             dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: owned)]
            check(dnnl_primitive_execute(reorder, stream, 2, arguments), "weights reorder")
            dnnl_stream_wait(stream)
            dnnl_primitive_destroy(reorder)
            dnnl_primitive_desc_destroy(reorderDescriptor)
            dnnl_memory_destroy(source)
        }
        self.weights = owned!
        self.bias = biasMemory!
    }

    func fits(_ other: dnnl_memory_desc_t) -> Bool {
        withUnsafePointer(to: descriptor) { a in withUnsafePointer(to: other) { b in dnnl_memory_desc_equal(a, b) != 0 } }
    }

    deinit {
        dnnl_memory_destroy(weights)
        dnnl_memory_destroy(bias)
    }
}

/// A 64-byte aligned float buffer the fused engine keeps activations in.
final class ActivationBuffer {
    let capacity: Int
    let pointer: UnsafeMutablePointer<Float>

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.capacity * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: self.capacity)
        pointer.initialize(repeating: 0, count: self.capacity)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// oneDNN reports only misuse here (shapes are validated before a pass), so a failure is
/// a bug in the engine, not in the user's input.
@inline(__always)
func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
    precondition(status == dnnl_success, "oneDNN failed (status \(status.rawValue)) at: \(what())")
}
