import ArgumentParser
import DepthLens

extension LinePlot.YScale: ExpressibleByArgument {}

/// What the plots of an analysis on `context` show besides its table: the images in the
/// subtitle, the downsampling blocks (shortcut not the identity) marked, the y axis of the
/// single-block plot.
func plotOptions(_ context: AnalysisContext, yScale: LinePlot.YScale = .linear) -> AnalysisPlots.Options {
    AnalysisPlots.Options(images: context.source.count == 0 ? nil : context.source.count,
                          downsamplingBlocks: context.checkpoint.architecture.blocks.filter { $0.shortcut != .identity }.map(\.index),
                          singleBlockYScale: yScale)
}
