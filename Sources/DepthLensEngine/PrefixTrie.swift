import DepthLensFormats
import DepthLensModel

/// Gate configurations arranged by common prefix, so that configurations which agree on
/// their first blocks share the work of those blocks.
///
/// Each node is the activation after some blocks under one gate prefix. Children are
/// visited smallest first: a node's activation is kept only while a child other than
/// the last is evaluated, and the last child reuses its buffer (in place for an identity
/// block). Since every kept activation belongs to a node whose subtree holds at least
/// as many configurations as the one being evaluated, at most about log2(K) + 2
/// activations are alive for K configurations; the L + 1 single-block lesions of a
/// network need three.
struct PrefixTrie {
    let configurations: [[Float]]

    init(_ configurations: [[Float]]) { self.configurations = configurations }

    /// The configurations in `members` grouped by their gate at `block` (+0 and -0 as one),
    /// smallest group first, ties in order of first appearance.
    func children(of members: [Int], at block: Int) -> [(gate: Float, members: [Int])] {
        var groups: [(gate: Float, members: [Int])] = []
        var index: [UInt32: Int] = [:]
        for m in members {
            var g = configurations[m][block]
            if g == 0 { g = 0 }
            if let i = index[g.bitPattern] {
                groups[i].members.append(m)
            } else {
                index[g.bitPattern] = groups.count
                groups.append((g, [m]))
            }
        }
        return groups.enumerated().sorted { ($0.element.members.count, $0.offset) < ($1.element.members.count, $1.offset) }
            .map(\.element)
    }
}

extension FusedPass {
    /// Evaluates every configuration of `trie` on `n` images; `deliver(c, logits)` receives
    /// the n x classes logits of configuration c.
    func evaluate(_ trie: PrefixTrie, pixels: UnsafePointer<Float>, rows n: Int,
                  deliver: (Int, UnsafePointer<Float>) -> Void) {
        guard !trie.configurations.isEmpty else { return }
        let x = take()
        stem(pixels, rows: n, into: x)
        let logits = [Float](repeating: 0, count: n * network.architecture.numClasses)
        logits.withUnsafeBufferPointer { buffer in
            let out = UnsafeMutablePointer(mutating: buffer.baseAddress!)
            descend(trie, block: 0, members: Array(trie.configurations.indices), input: x, owned: true, rows: n,
                    logits: out, deliver: deliver)
        }
    }

    /// Evaluates blocks `block`... for `members` from the activation `x` after the shared
    /// prefix. When `owned`, the caller no longer needs `x`: it is reused or returned.
    private func descend(_ trie: PrefixTrie, block l: Int, members: [Int], input x: UnsafeMutablePointer<Float>,
                         owned: Bool, rows n: Int, logits: UnsafeMutablePointer<Float>,
                         deliver: (Int, UnsafePointer<Float>) -> Void) {
        if l == network.blockCount {
            head(x, rows: n, logits: logits)
            for m in members { deliver(m, logits) }
            if owned { give(x) }
            return
        }
        let identity = network.blocks[l].isIdentity
        let children = trie.children(of: members, at: l)
        for (i, child) in children.enumerated() {
            let consume = owned && i == children.count - 1
            if identity && child.gate == 0 {
                descend(trie, block: l + 1, members: child.members, input: x, owned: consume, rows: n, logits: logits,
                        deliver: deliver)
            } else if identity && consume {
                step(l, gate: child.gate, input: x, output: x, rows: n)
                descend(trie, block: l + 1, members: child.members, input: x, owned: true, rows: n, logits: logits,
                        deliver: deliver)
            } else {
                let y = take()
                step(l, gate: child.gate, input: x, output: y, rows: n)
                if consume { give(x) }
                descend(trie, block: l + 1, members: child.members, input: y, owned: true, rows: n, logits: logits,
                        deliver: deliver)
            }
        }
    }
}
