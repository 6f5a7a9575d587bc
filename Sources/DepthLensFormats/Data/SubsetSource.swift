import DepthLensModel

/// Images `offset ..< offset + limit` of another source.
public struct SubsetSource: ImageSource {
    public let base: any ImageSource
    public let offset: Int
    public let count: Int

    /// - Throws: ``DataSetError`` when the offset lies beyond the data set.
    public init(_ base: any ImageSource, offset: Int, limit: Int?) throws {
        guard offset >= 0, offset <= base.count else {
            throw DataSetError(source: base.name, message: "offset \(offset) is beyond the \(base.count) images")
        }
        if let limit, limit <= 0 { throw DataSetError(source: base.name, message: "the limit must be positive, found \(limit)") }
        self.base = base
        self.offset = offset
        count = min(base.count - offset, limit ?? Int.max)
    }

    public var channels: Int { base.channels }
    public var height: Int { base.height }
    public var width: Int { base.width }
    public var name: String { base.name }

    public func pixels(_ range: Range<Int>) throws -> [Float] {
        try base.pixels((range.lowerBound + offset)..<(range.upperBound + offset))
    }

    public func labels(_ range: Range<Int>) throws -> [Int]? {
        try base.labels((range.lowerBound + offset)..<(range.upperBound + offset))
    }
}
