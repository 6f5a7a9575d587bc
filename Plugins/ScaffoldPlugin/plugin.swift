import PackagePlugin

@main
struct ScaffoldPlugin: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        Diagnostics.error("scaffold-plugin: not written yet")
    }
}
