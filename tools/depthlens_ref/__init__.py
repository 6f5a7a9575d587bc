"""Reference PyTorch side of DepthLens: model definitions, exporter, data loading."""
