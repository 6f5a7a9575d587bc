/// Where each family's description is built: adding a family is a builder file beside
/// this one and a line here (docs/architecture.md).
extension Architecture {
    /// What the network computes, from which every other view of it is derived: the
    /// expected tensors, `inspect`, both engines and batch-norm recalibration.
    public var modelDescription: ModelDescription {
        switch family {
        case Self.cifarFamily, Self.imageNetFamily:
            return ModelDescription(resNet: self)
        case Self.vitFamily:
            guard let vit else { preconditionFailure("a timm_vit architecture without its fields") }
            return ModelDescription(visionTransformer: self, vit)
        case Self.convNeXtFamily:
            return ModelDescription(convNeXt: self)
        default:
            // `validate()` admits only the families above; an unvalidated value is a programming error.
            preconditionFailure("no model description for family '\(family)'")
        }
    }

    /// Every expected `state_dict` key with its shape, in forward order. Convolution
    /// weights are OIHW.
    public var expectedTensors: [(key: String, shape: [Int])] {
        modelDescription.tensors.map { ($0.key, $0.shape) }
    }

    /// Number of learned parameters (batch-norm running statistics excluded).
    public var parameterCount: Int { modelDescription.parameterCount }
}
