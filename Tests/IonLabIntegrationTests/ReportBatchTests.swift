@testable import IonLabAgent
import IonLabAgentProtocol
import IonLabWire
import Testing

/// Results piled up during a long outage go back in messages the controller accepts: once, they went in
/// one message that broke the frame or count limit every time, and the agent reconnected for ever.
@Suite struct ReportBatchTests {
    @Test func aBacklogGoesInBatchesThatFitAMessage() throws {
        let tail = String(repeating: "t", count: 8 << 10)
        let backlog = (0..<2000).map { ExecResult(jobID: "j-\($0)", outcome: .completed, exitCode: 0, outputTail: tail) }
        let batches = ReportBatches.split(backlog)
        #expect(batches.flatMap { $0 }.map(\.jobID) == backlog.map(\.jobID))
        for batch in batches {
            let decoded = try MessageCoding.decode(try MessageCoding.encode(AgentControl.jobReports(batch)), as: AgentControl.self)
            #expect(decoded.name == "jobReports")
        }
        #expect(ReportBatches.split([]).isEmpty)
    }
}
