import Foundation
import IonLabFuzz

// Built with `-sanitize=fuzzer -D FUZZING` (scripts/fuzz.sh) this is a libFuzzer binary for the target named
// by IONLAB_FUZZ_TARGET. Built normally, it replays inputs through a target and writes the seed corpus.

#if FUZZING
private let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["IONLAB_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("set IONLAB_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    target.run(count == 0 ? [] : Array(UnsafeBufferPointer(start: bytes, count: count)))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                       _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point as `<module>_main`; here it hands over to libFuzzer's driver.
@_cdecl("ionlab_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return runDriver(&argc, &argv, fuzzOneInput)
}
#else
@main
struct FuzzReplay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch (arguments.first, arguments.count) {
        case ("seeds", 2):
            for target in FuzzTarget.allCases {
                let directory = "\(arguments[1])/\(target.rawValue)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for (name, bytes) in try FuzzSeeds.all(for: target) {
                    try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
                }
            }
        case ("replay", 3...):
            guard let target = FuzzTarget(rawValue: arguments[1]) else { throw ReplayError("no fuzz target named \(arguments[1])") }
            for path in arguments.dropFirst(2) {
                guard let data = FileManager.default.contents(atPath: path) else { throw ReplayError("cannot read \(path)") }
                target.run(Array(data))
            }
            print("replayed \(arguments.count - 2) input(s) through \(target.rawValue)")
        default:
            throw ReplayError("usage: ionlab-fuzz seeds DIR | ionlab-fuzz replay TARGET FILE...")
        }
    }
}

struct ReplayError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
#endif
