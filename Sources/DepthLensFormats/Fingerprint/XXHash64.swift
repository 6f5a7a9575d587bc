/// XXH64 (Yann Collet's xxHash, 64-bit variant), fed in pieces: a fast non-cryptographic
/// hash for telling whether bytes changed (file fingerprints, progress-journal records).
/// Hand-written to the published specification (xxhash.com, `doc/xxhash_spec.md`) so
/// that the package needs no new library; `XXHash64Tests` checks it against the
/// reference implementation's sanity vectors.
///
/// Not a defence against someone forging a collision: it detects replaced, edited and
/// damaged files, which is what a resume must not trust.
public struct XXHash64: Sendable {
    static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var v1, v2, v3, v4: UInt64
    private let seed: UInt64
    /// Bytes not yet consumed as a whole 32-byte stripe (fewer than 32).
    private var pending: [UInt8] = []
    /// Bytes fed so far.
    public private(set) var length: UInt64 = 0

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ Self.prime1 &+ Self.prime2
        v2 = seed &+ Self.prime2
        v3 = seed
        v4 = seed &- Self.prime1
        pending.reserveCapacity(32)
    }

    /// The hash of `bytes` in one call.
    public static func hash<Bytes: Collection>(_ bytes: Bytes, seed: UInt64 = 0) -> UInt64 where Bytes.Element == UInt8 {
        var hasher = XXHash64(seed: seed)
        hasher.update(Array(bytes))
        return hasher.finalize()
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Feeds more bytes; any split of the input gives the same hash.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        length &+= UInt64(buffer.count)
        var offset = 0
        if !pending.isEmpty {
            let take = min(32 - pending.count, buffer.count)
            pending.append(contentsOf: buffer[0..<take])
            offset = take
            guard pending.count == 32 else { return }
            pending.withUnsafeBytes { stripe($0.baseAddress!) }
            pending.removeAll(keepingCapacity: true)
        }
        guard let base = buffer.baseAddress else { return }
        while buffer.count - offset >= 32 {
            stripe(base + offset)
            offset += 32
        }
        if offset < buffer.count { pending.append(contentsOf: buffer[offset...]) }
    }

    /// The hash of everything fed so far (the hasher can be fed further afterwards).
    public func finalize() -> UInt64 {
        var h: UInt64
        if length >= 32 {
            h = rotate(v1, 1) &+ rotate(v2, 7) &+ rotate(v3, 12) &+ rotate(v4, 18)
            for v in [v1, v2, v3, v4] { h = (h ^ Self.round(0, v)) &* Self.prime1 &+ Self.prime4 }
        } else {
            h = seed &+ Self.prime5
        }
        h &+= length
        pending.withUnsafeBytes { tail in
            var i = 0
            while tail.count - i >= 8 {
                h ^= Self.round(0, Self.load64(tail.baseAddress! + i))
                h = rotate(h, 27) &* Self.prime1 &+ Self.prime4
                i += 8
            }
            if tail.count - i >= 4 {
                h ^= UInt64(Self.load32(tail.baseAddress! + i)) &* Self.prime1
                h = rotate(h, 23) &* Self.prime2 &+ Self.prime3
                i += 4
            }
            while i < tail.count {
                h ^= UInt64(tail[i]) &* Self.prime5
                h = rotate(h, 11) &* Self.prime1
                i += 1
            }
        }
        h ^= h >> 33
        h &*= Self.prime2
        h ^= h >> 29
        h &*= Self.prime3
        h ^= h >> 32
        return h
    }

    /// 16 lowercase hex digits.
    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    private mutating func stripe(_ p: UnsafeRawPointer) {
        v1 = Self.round(v1, Self.load64(p))
        v2 = Self.round(v2, Self.load64(p + 8))
        v3 = Self.round(v3, Self.load64(p + 16))
        v4 = Self.round(v4, Self.load64(p + 24))
    }

    @inline(__always)
    private static func round(_ accumulator: UInt64, _ input: UInt64) -> UInt64 {
        rotate(accumulator &+ input &* prime2, 31) &* prime1
    }

    @inline(__always)
    private static func load64(_ p: UnsafeRawPointer) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) }

    @inline(__always)
    private static func load32(_ p: UnsafeRawPointer) -> UInt32 { UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)) }
}

@inline(__always)
private func rotate(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
