import IonLabWire
import Testing

/// Flow-control windows and stream ids as pure values, with no I/O (the swift-nio-ssh way).
@Suite struct FlowControlTests {
    @Test func dataLeavesRoomForAMessage() {
        var window = OutboundWindow(credit: FlowControl.messageReserve + 10_000)
        let granted = window.reserveData(upTo: 1 << 20)
        #expect(granted == 10_000 - FlowControl.cost(payloadBytes: 1))
        let more = window.reserveData(upTo: 1)
        #expect(more == nil)
        let message = window.reserveMessage(payloadBytes: 1000)
        #expect(message)
    }

    @Test func aMessageWaitsForItsWholeCost() {
        var window = OutboundWindow(credit: 1000)
        let tooBig = window.reserveMessage(payloadBytes: 1000)
        #expect(!tooBig)
        let fits = window.reserveMessage(payloadBytes: 1000 - FlowControl.frameOverhead)
        #expect(fits)
        #expect(window.credit == 0)
    }

    @Test func grantsAreCappedLikeHTTP2() throws {
        var window = OutboundWindow(credit: 0)
        try window.grant(UInt32(Int32.max), stream: 1)
        #expect(window.credit == FlowControl.maximumWindow)
        #expect(throws: WireError.self) { try window.grant(1, stream: 1) }
        var fresh = OutboundWindow()
        #expect(throws: WireError.self) { try fresh.grant(0, stream: 1) }
        #expect(throws: WireError.self) { try fresh.grant(UInt32.max, stream: 1) }
        #expect(fresh.credit == FlowControl.initialWindow)
    }

    @Test func theReceiverRefusesMoreThanItGrantedAndGrantsBackInBatches() throws {
        var window = InboundWindow(size: 4096)
        try window.receive(payloadBytes: 4096 - FlowControl.frameOverhead, stream: 3)
        #expect(throws: WireError.self) { try window.receive(payloadBytes: 0, stream: 3) }
        let early = window.consume(payloadBytes: 100)
        #expect(early == nil)
        let batched = window.consume(payloadBytes: 4096 - FlowControl.frameOverhead - 100 - FlowControl.frameOverhead)
        let grant = try #require(batched)
        #expect(Int(grant) == 4096)
        try window.receive(payloadBytes: 4096 - FlowControl.frameOverhead, stream: 3)
    }

    @Test func peerIDsMayArriveOutOfOrder() throws {
        var ids = PeerStreamIDs(peerParity: 1)
        #expect(try claim(&ids, 5))
        #expect(try claim(&ids, 1))
        #expect(try claim(&ids, 3))
        #expect(try !claim(&ids, 3))  // a late frame of a stream already opened
        #expect(try !claim(&ids, 2))  // this side's own parity
        #expect(try !claim(&ids, 0))
    }

    @Test func aSingleJumpPastTheLimitIsAnError() throws {
        var ids = PeerStreamIDs(peerParity: 0)
        #expect(throws: WireError.self) { try ids.claim(2 + 2 * (PeerStreamIDs.maximumPassedOver + 1)) }
        #expect(try claim(&ids, 2 + 2 * PeerStreamIDs.maximumPassedOver))
    }

    /// Repeated jumps each within the limit once grew the remembered set without end.
    @Test func repeatedJumpsForgetTheOldestIDs() throws {
        var ids = PeerStreamIDs(peerParity: 1)
        var id: UInt32 = 1
        for _ in 0..<1000 {
            id += 2 * PeerStreamIDs.maximumPassedOver
            #expect(try claim(&ids, id))
        }
        #expect(ids.rememberedCount <= Int(PeerStreamIDs.maximumPassedOver))
        #expect(try claim(&ids, id - 2))  // recent ids stay claimable
        #expect(try !claim(&ids, 3))      // the oldest were forgotten
    }

    /// The runs answer exactly as a plain list of passed-over ids (oldest forgotten first) would, for random
    /// sequences of jumps and late claims.
    @Test func runsBehaveLikeAListOfPassedOverIDs() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10 {
            var ids = PeerStreamIDs(peerParity: 1)
            var model: [UInt32] = []  // ascending: ids only ever grow
            var highest: UInt32 = 0
            var mismatches = 0
            for _ in 0..<500 {
                let id: UInt32
                if Bool.random(using: &generator) || highest == 0 {
                    id = highest + 2 * UInt32.random(in: 0...600, using: &generator) + (highest == 0 ? 1 : 2)
                } else {
                    id = 1 + 2 * UInt32.random(in: 0...(highest / 2), using: &generator)
                }
                let expected: Bool
                if id > highest {
                    model += stride(from: highest == 0 ? 1 : highest + 2, to: id, by: 2)
                    if model.count > Int(PeerStreamIDs.maximumPassedOver) { model.removeFirst(model.count - Int(PeerStreamIDs.maximumPassedOver)) }
                    highest = id
                    expected = true
                } else if let index = model.firstIndex(of: id) {
                    model.remove(at: index)
                    expected = true
                } else {
                    expected = false
                }
                if try claim(&ids, id) != expected || ids.rememberedCount != model.count { mismatches += 1 }
            }
            #expect(mismatches == 0)
        }
    }

    @Test func idsAtTheTopAreAnErrorNotATrap() throws {
        var ids = PeerStreamIDs(peerParity: 1)
        #expect(throws: WireError.self) { try ids.claim(UInt32.max) }
        #expect(try claim(&ids, 1))
    }

    private func claim(_ ids: inout PeerStreamIDs, _ id: UInt32) throws -> Bool { try ids.claim(id) }
}
