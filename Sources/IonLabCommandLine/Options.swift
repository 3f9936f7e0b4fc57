import ArgumentParser
import Foundation
import IonLabAdminAPI
import IonLabControllerConfig

/// Options every command shares.
public struct GlobalOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: ArgumentHelp("The controller's state directory.",
                                            discussion: "Defaults to $IONLAB_STATE_DIR, else /var/lib/ionlab for root, else ~/.local/state/ionlab."))
    public var stateDir: String?

    public init() {}

    public var paths: StatePaths { StatePaths.resolve(stateDir) }
}


/// Runs a CLI body, turning expected errors into one line on stderr and exit code 1.
public func reportingErrors<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as CleanExit {
        throw error
    } catch {
        Terminal.error("ionlab: \(AdminDescribe.error(error))")
        throw ExitCode(1)
    }
}

public enum AdminDescribe {
    public static func error(_ error: Error) -> String {
        Format.error(error)
    }
}

/// The controller config of a state directory, or the defaults before `ionlab init`.
public enum ControllerConfigFile {
    public static func load(_ paths: StatePaths) throws -> ControllerConfig {
        FileManager.default.fileExists(atPath: paths.config) ? try ControllerConfig.load(path: paths.config) : ControllerConfig()
    }

    /// The image catalog the config names (relative to the state directory); empty when there is none yet.
    public static func catalog(_ paths: StatePaths, _ config: ControllerConfig) throws -> ImageCatalog {
        let path = paths.resolve(config.imageCatalog)
        return FileManager.default.fileExists(atPath: path) ? try ImageCatalog.load(path: path) : ImageCatalog(images: [])
    }
}
