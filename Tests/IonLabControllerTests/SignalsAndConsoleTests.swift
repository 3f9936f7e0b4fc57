import Foundation
import IonLabAdminAPI
@testable import IonLabController
import Testing

@Suite struct ChangeSignalTests {
    @Test func aWaiterWakesOnTheChangeItWaitsFor() async throws {
        let signal = ChangeSignal()
        let ready = ManagedFlag()
        let waiter = Task { await signal.wait(for: { ready.value ? "ready" : nil }, timeout: .seconds(3600)) }
        try await Task.sleep(for: .milliseconds(50))
        signal.notify()  // a change that does not satisfy the waiter
        ready.set()
        let started = ContinuousClock.now
        signal.notify()
        #expect(await waiter.value == "ready")
        // Woken by the change, not by its timeout an hour away (the bound is loose: a loaded machine is slow).
        #expect(ContinuousClock.now - started < .seconds(600))
    }

    @Test func aWaitEndsAtItsTimeoutOrOnCancellation() async {
        let signal = ChangeSignal()
        #expect(await signal.wait(for: { nil as Int? }, timeout: .milliseconds(50)) == nil)
        let waiter = Task { await signal.wait(for: { nil as Int? }, timeout: .seconds(60)) }
        waiter.cancel()
        #expect(await waiter.value == nil)
    }
}

final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.withLock { flag = true } }
    var value: Bool { lock.withLock { flag } }
}

@Suite struct ConsoleMilestonesTests {
    @Test func milestonesAreReadAsTheLogGrowsEvenWhenAMarkerIsSplit() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        var console = ConsoleMilestones(path: path)
        #expect(console.newMilestones().isEmpty)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        defer { try? handle.close() }
        handle.write(Data("[    0.000000] Linux version 6.1.0\n[    3.2] Cloud-in".utf8))
        #expect(console.newMilestones().map(\.0) == [.vmKernelUp])
        handle.write(Data("it v. 22.4.2 running 'init-local'\nionlab: agent ins".utf8))
        #expect(console.newMilestones().map(\.0) == [.vmCloudInit])
        handle.write(Data("talled\n".utf8))
        #expect(console.newMilestones().map(\.0) == [.vmAgentInstalled])
        handle.write(Data("Linux version again\n".utf8))
        #expect(console.newMilestones().isEmpty)
    }

    /// A later boot appends to the same log: its follower starts at the end, so the first boot's markers
    /// are not taken for its own.
    @Test func aLaterBootReadsOnlyWhatItAdds() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "Linux version 6.1\nCloud-init v. 22\nionlab: agent installed\n".write(toFile: path, atomically: true, encoding: .utf8)
        var again = ConsoleMilestones(path: path, skippingWhatIsThere: true)
        #expect(again.newMilestones().isEmpty)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data("[    0.0] Linux version 6.1 (again)\n".utf8))
        #expect(again.newMilestones().map(\.0) == [.vmKernelUp])
        var first = ConsoleMilestones(path: path)
        #expect(first.newMilestones().map(\.0) == [.vmKernelUp, .vmCloudInit, .vmAgentInstalled])
    }

    /// cloud-init's stages as Debian 12's cloud-init 22.4 writes them to the console, each once.
    @Test func cloudInitsStagesAreMilestones() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID().uuidString.prefix(8)).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            [    4.1] cloud-init[201]: Cloud-init v. 22.4.2 running 'init-local' at Tue, 01 Dec 2026 14:00:04 +0000. Up 4.05 seconds.
            [   14.9] cloud-init[230]: Cloud-init v. 22.4.2 running 'init' at Tue, 01 Dec 2026 14:00:15 +0000. Up 14.80 seconds.
            [   21.0] cloud-init[300]: Cloud-init v. 22.4.2 running 'modules:config' at Tue, 01 Dec 2026 14:00:21 +0000. Up 20.95 seconds.
            [   24.0] cloud-init[320]: Cloud-init v. 22.4.2 running 'modules:final' at Tue, 01 Dec 2026 14:00:24 +0000. Up 23.90 seconds.
            ionlab: agent installed
            [   31.0] cloud-init[320]: Cloud-init v. 22.4.2 finished at Tue, 01 Dec 2026 14:00:31 +0000. Datasource DataSourceNoCloud [seed=/dev/sr0][dsmode=net].  Up 30.99 seconds
            [   32.0] cloud-init[321]: Cloud-init v. 22.4.2 running 'modules:final' at Tue, 01 Dec 2026 14:00:32 +0000.

            """.write(toFile: path, atomically: true, encoding: .utf8)
        var console = ConsoleMilestones(path: path)
        #expect(console.newMilestones().map(\.0) == [.vmCloudInit, .vmCloudInitNetwork, .vmCloudInitConfig, .vmCloudInitFinal,
                                                    .vmAgentInstalled, .vmCloudInitDone])
    }

    /// The user-data prints the marker the controller looks for: the two are one contract.
    @Test func theSeedsUserDataPrintsTheAgentMarker() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let userData = try String(contentsOf: root.appendingPathComponent("agent-dist/cloud-init/user-data"), encoding: .utf8)
        #expect(userData.contains("echo \"\(ConsoleMilestones.agentInstalledMarker)\""))
    }
}
