import Foundation
import IonLabAdminAPI
import Testing

@Suite struct DashboardTokenTests {
    func scratch() throws -> StatePaths {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ionlab-token-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return StatePaths(directory: directory)
    }

    /// The controller and `ionlab dashboard token` may make it at the same moment: both must end up with the
    /// one in the file, or the printed token would not open the page. (The window is short: this holds the
    /// invariant under 32 concurrent makers; it did not reproduce the rename race it guards against.)
    @Test func tokensMadeAtOnceAreOneToken() async throws {
        let paths = try scratch()
        defer { try? FileManager.default.removeItem(atPath: paths.directory) }
        let tokens = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<32 { group.addTask { try? DashboardToken.loadOrCreate(paths).value } }
            return await group.reduce(into: [String?]()) { $0.append($1) }
        }
        #expect(tokens.allSatisfy { $0 != nil })
        #expect(Set(tokens.compactMap { $0 }).count == 1)
        let stored = try String(contentsOfFile: paths.dashboardToken, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(tokens.first == stored)
        #expect(try FileManager.default.attributesOfItem(atPath: paths.dashboardToken)[.posixPermissions] as? Int == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: paths.directory) == ["dashboard.token"], "a temporary file was left")
    }

    @Test func aTokenFileThatIsNotATokenIsNamed() throws {
        let paths = try scratch()
        defer { try? FileManager.default.removeItem(atPath: paths.directory) }
        try "not a token\n".write(toFile: paths.dashboardToken, atomically: true, encoding: .utf8)
        #expect(throws: ControllerError.self) { try DashboardToken.loadOrCreate(paths) }
        do {
            _ = try DashboardToken.loadOrCreate(paths)
        } catch {
            #expect("\(error)".contains("dashboard.token: not a dashboard token"))
        }
        let token = DashboardToken(value: String(repeating: "ab", count: 32))
        #expect(token.matches(Substring(String(repeating: "ab", count: 32))))
        #expect(!token.matches(Substring(String(repeating: "ab", count: 31) + "ac")))
        #expect(!token.matches("ab"))
    }
}
