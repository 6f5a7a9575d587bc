import CDNNL
import Foundation

/// A vision transformer's attention core on oneDNN, for the fused engine: per image and
/// head, softmax(q kᵀ · scale) v, the heads concatenated.
///
/// The blocked `qkv` activation (3C x 1 x T, channel c of token t at
/// `((c / b) T + t) b + c % b`) is copied once into token-major q, k and v (T x C each:
/// runs of b channels move as whole vectors). In that layout head h's q is the strided
/// matrix T x d at column h d (oneDNN's `acbd` over images, heads, tokens, channels) and
/// its kᵀ the strided d x T (`adbc`), so one batched matmul over (image, head) computes
/// every score with the scale as its output scale, oneDNN's softmax normalises the rows
/// in place, and a second batched matmul writes p v straight into token-major output
/// (T x C, heads concatenated), which is blocked back for `proj`. Measured on
/// vit_small_patch16_224 (one image, one thread): 1.1 ms a block with oneDNN's brgemm
/// kernels, against about 9 ms for the hand-written loop it replaced
/// (`Kernels.attend`, still the reference engine's).
///
/// Primitives are made per (images, heads, tokens, head width, scale) and shared by all
/// workers; each workspace has its own stream, scratchpad and buffers.
final class AttentionCore {
    private let engine: dnnl_engine_t
    private let stream: dnnl_stream_t
    private var scratchpad = ActivationBuffer(capacity: 1 << 10)
    /// q, k, v and the output, token-major, then the scores: sized for the largest piece run.
    private var buffer = ActivationBuffer(capacity: 1 << 10)

    init(engine: dnnl_engine_t) {
        self.engine = engine
        var stream: dnnl_stream_t?
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "attention stream")
        self.stream = stream!
    }

    deinit {
        dnnl_stream_wait(stream)
        dnnl_stream_destroy(stream)
    }

    /// Attention on `rows` images: `input` is the blocked 3C x 1 x T `qkv` activation,
    /// `output` the blocked C x 1 x T result (padded channels zero).
    func run(heads: Int, scale: Float, input: UnsafePointer<Float>, inShape: BlockedShape,
             output: UnsafeMutablePointer<Float>, outShape: BlockedShape, rows n: Int) {
        var start = 0
        while start < n {
            // Pieces of 1, 2, 4, ... images, as the convolutions: few primitives serve every chunk.
            let piece = 1 << (Int.bitWidth - 1 - (n - start).leadingZeroBitCount)
            let shape = AttentionShape(images: piece, heads: heads, tokens: inShape.plane,
                                       headWidth: outShape.channels / heads, scale: scale)
            attend(AttentionPrimitives.cached(shape, engine: engine), input: input + start * inShape.rowSize,
                   inShape: inShape, output: output + start * outShape.rowSize, outShape: outShape)
            start += piece
        }
    }

    private func attend(_ p: AttentionPrimitives, input: UnsafePointer<Float>, inShape: BlockedShape,
                        output: UnsafeMutablePointer<Float>, outShape: BlockedShape) {
        let s = p.shape, plain = s.images * s.tokens * s.channels
        let needed = 4 * plain + s.images * s.heads * s.tokens * s.tokens
        if buffer.capacity < needed { buffer = ActivationBuffer(capacity: needed) }
        if scratchpad.capacity * 4 < p.scratchpadBytes { scratchpad = ActivationBuffer(capacity: p.scratchpadBytes / 4 + 1) }
        let q = buffer.pointer, k = q + plain, v = k + plain, mixed = v + plain, scores = mixed + plain
        Self.split(input, shape: inShape, images: s.images, channels: s.channels, into: (q, k, v))
        execute(p.scores, [(DNNL_ARG_SRC, p.query, q), (DNNL_ARG_WEIGHTS, p.keysTransposed, k),
                           (DNNL_ARG_DST, p.scoreMatrix, scores)])
        execute(p.softmax, [(DNNL_ARG_SRC, p.scoreRows, scores), (DNNL_ARG_DST, p.scoreRows, scores)])
        execute(p.mix, [(DNNL_ARG_SRC, p.scoreMatrix, scores), (DNNL_ARG_WEIGHTS, p.values, v),
                        (DNNL_ARG_DST, p.mixed, mixed)])
        Self.block(mixed, images: s.images, tokens: s.tokens, into: output, shape: outShape)
    }

    private func execute(_ primitive: DNNLPrimitive, _ arguments: [(Int32, dnnl_memory_desc_t, UnsafeMutablePointer<Float>)]) {
        var memories: [dnnl_memory_t?] = []
        defer { memories.forEach { dnnl_memory_destroy($0) } }
        var list: [dnnl_exec_arg_t] = []
        for (argument, descriptor, pointer) in arguments + [(DNNL_ARG_SCRATCHPAD, primitive.scratchpad, scratchpad.pointer)] {
            var memory: dnnl_memory_t?
            withUnsafePointer(to: descriptor) { check(dnnl_memory_create(&memory, $0, engine, pointer), "attention memory") }
            memories.append(memory)
            list.append(dnnl_exec_arg_t(arg: argument, memory: memory))
        }
        check(dnnl_primitive_execute(primitive.primitive, stream, Int32(list.count), list), "attention")
    }

    /// `images` blocked 3C x 1 x T rows into token-major q, k, v (T x C each, image after
    /// image): channel c goes to q, k or v by c / C.
    static func split(_ input: UnsafePointer<Float>, shape: BlockedShape, images: Int, channels c: Int,
                      into targets: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) {
        let b = shape.block, t = shape.plane, all = shape.channels
        for r in 0..<images {
            let src = input + r * shape.rowSize
            for cb in 0..<shape.channelBlocks {
                var first = cb * b
                let end = min(first + b, all)
                while first < end {
                    // A run of channels within one of q, k, v (a whole block when C is a multiple of b).
                    let part = first / c, runEnd = min(end, (part + 1) * c)
                    let target = part == 0 ? targets.0 : part == 1 ? targets.1 : targets.2
                    let from = src + cb * t * b + (first - cb * b), to = target + r * t * c + (first - part * c)
                    for token in 0..<t { (to + token * c).update(from: from + token * b, count: runEnd - first) }
                    first = runEnd
                }
            }
        }
    }

    /// `images` token-major T x C rows into `shape`'s blocked layout, padded channels zero.
    static func block(_ input: UnsafePointer<Float>, images: Int, tokens t: Int, into output: UnsafeMutablePointer<Float>,
                      shape: BlockedShape) {
        let b = shape.block, c = shape.channels
        for r in 0..<images {
            let src = input + r * t * c, dst = output + r * shape.rowSize
            for cb in 0..<shape.channelBlocks {
                let width = min(b, c - cb * b)
                for token in 0..<t {
                    let to = dst + (cb * t + token) * b
                    to.update(from: src + token * c + cb * b, count: width)
                    if width < b { (to + width).update(repeating: 0, count: b - width) }
                }
            }
        }
    }
}

/// What a set of attention primitives is specialised for.
struct AttentionShape: Hashable {
    var images: Int
    var heads: Int
    var tokens: Int
    var headWidth: Int
    var scale: Float

    var channels: Int { heads * headWidth }
}

/// The three primitives of the attention core for one shape, with the memory
/// descriptors they run on (strided views of token-major T x C buffers).
final class AttentionPrimitives: @unchecked Sendable {
    let shape: AttentionShape
    /// q kᵀ · scale: (images, heads, T, d) x (images, heads, d, T) to (images, heads, T, T).
    let scores: DNNLPrimitive
    /// Softmax over the last axis of the scores, seen as (images · heads · T) x T.
    let softmax: DNNLPrimitive
    /// p v: (images, heads, T, T) x (images, heads, T, d) to token-major output.
    let mix: DNNLPrimitive
    let query, keysTransposed, values, mixed, scoreMatrix, scoreRows: dnnl_memory_desc_t
    var scratchpadBytes: Int { max(scores.scratchpadBytes, softmax.scratchpadBytes, mix.scratchpadBytes) }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [AttentionShape: AttentionPrimitives] = [:]

    static func cached(_ shape: AttentionShape, engine: dnnl_engine_t) -> AttentionPrimitives {
        lock.lock()
        defer { lock.unlock() }
        if let found = cache[shape] { return found }
        let made = AttentionPrimitives(shape, engine: engine)
        cache[shape] = made
        return made
    }

    private init(_ s: AttentionShape, engine: dnnl_engine_t) {
        shape = s
        let (n, h, t, d, c) = (s.images, s.heads, s.tokens, s.headWidth, s.channels)
        func strided(_ dims: [Int], _ strides: [Int]) -> dnnl_memory_desc_t {
            var md = dnnl_memory_desc_t()
            check(dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), dims.map { dnnl_dim_t($0) }, dnnl_f32,
                                                   strides.map { dnnl_dim_t($0) }), "attention memory descriptor")
            return md
        }
        // Head h of image i, token j, channel e sits at i T C + j C + h d + e.
        var query = strided([n, h, t, d], [t * c, d, c, 1])
        var keysTransposed = strided([n, h, d, t], [t * c, d, 1, c])
        var scoreMatrix = strided([n, h, t, t], [h * t * t, t * t, t, 1])
        var scoreRows = strided([n * h * t, t], [t, 1])
        var values = query, mixed = query
        var scale = s.scale
        var product = dnnl_matmul_desc_t(), normalise = dnnl_softmax_desc_t(), weighting = dnnl_matmul_desc_t()
        check(dnnl_matmul_desc_init(&product, &query, &keysTransposed, nil, &scoreMatrix), "attention scores descriptor")
        check(dnnl_softmax_forward_desc_init(&normalise, dnnl_forward_inference, &scoreRows, 1), "attention softmax descriptor")
        check(dnnl_matmul_desc_init(&weighting, &scoreMatrix, &values, nil, &mixed), "attention mix descriptor")
        scores = DNNLPrimitive(engine: engine, what: "attention scores for \(s)", descriptor: &product) { attributes in
            check(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &scale), "attention scale")
        }
        softmax = DNNLPrimitive(engine: engine, what: "attention softmax for \(s)", descriptor: &normalise)
        mix = DNNLPrimitive(engine: engine, what: "attention mix for \(s)", descriptor: &weighting)
        (self.query, self.keysTransposed, self.values, self.mixed) = (query, keysTransposed, values, mixed)
        (self.scoreMatrix, self.scoreRows) = (scoreMatrix, scoreRows)
    }
}

/// One oneDNN primitive with a user scratchpad (each caller passes its own, so workers
/// share the primitive), and the implementation oneDNN chose.
final class DNNLPrimitive: @unchecked Sendable {
    let primitive: dnnl_primitive_t
    let descriptor: dnnl_primitive_desc_t
    let scratchpad: dnnl_memory_desc_t
    let scratchpadBytes: Int
    /// oneDNN's name for it, e.g. "brg:avx512_core"; "ref" ones are slow.
    let implementation: String

    /// - Parameters:
    ///   - descriptor: an initialised operation descriptor (`dnnl_matmul_desc_t`, ...).
    ///   - configure: sets attributes beyond the user scratchpad.
    init<Operation>(engine: dnnl_engine_t, what: String, descriptor operation: UnsafeMutablePointer<Operation>,
                    configure: (dnnl_primitive_attr_t?) -> Void = { _ in }) {
        var attributes: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attributes), "attributes")
        defer { dnnl_primitive_attr_destroy(attributes) }
        check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "scratchpad mode")
        configure(attributes)
        var pd: dnnl_primitive_desc_t?
        check(dnnl_primitive_desc_create(&pd, UnsafeRawPointer(operation), attributes, engine, nil), "primitive descriptor: \(what)")
        var primitive: dnnl_primitive_t?
        check(dnnl_primitive_create(&primitive, pd), "primitive: \(what)")
        var name: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name)
        implementation = name.map { String(cString: $0) } ?? "unknown"
        descriptor = pd!
        self.primitive = primitive!
        scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        scratchpadBytes = withUnsafePointer(to: scratchpad) { dnnl_memory_desc_get_size($0) }
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }
}
