import Foundation
import IonLabAdminAPI
@testable import IonLabController
import Testing

/// Events outlive the build that stored them.
@Suite struct StoredEventTests {
    @Test func aVerificationStoredWithOnlyItsCountsStillReads() throws {
        let stored = #"{"verification":{"passed":1,"probes":2}}"#
        let detail = try Store.decoder.decode(EventDetail.self, from: Data(stored.utf8))
        #expect(detail == .verification(VerificationDetail(passed: 1, probes: 2)))
        let now = VerificationDetail(passed: 1, probes: 2, step: "portal", verdicts: [ProbeVerdict(label: "port 80", passed: false, detail: "refused")])
        #expect(try Store.decoder.decode(EventDetail.self, from: Data(Store.json(EventDetail.verification(now)).utf8)) == .verification(now))
    }
}
