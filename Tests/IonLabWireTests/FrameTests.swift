import IonLabWire
import NIOCore
import NIOEmbedded
import Testing

@Suite struct FrameTests {
    func decoderChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addFrameCodec()
        return channel
    }

    func encoded(_ frame: Frame) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try FrameEncoder().encode(data: frame, out: &buffer)
        return buffer
    }

    @Test func framesRoundTripEvenWhenSplitAcrossReads() throws {
        let channel = try decoderChannel()
        let payload = try MessageCoding.encode(.heartbeat(Health(bootID: "b", hostname: "h", uptimeSeconds: 1, load: [0, 0, 0],
                                                                  memoryTotalBytes: 1, memoryAvailableBytes: 1, diskTotalBytes: 1,
                                                                  diskFreeBytes: 1, agentVersion: "v")))
        var bytes = try encoded(Frame(kind: .message, stream: 7, payload: payload))
        while let piece = bytes.readSlice(length: min(3, bytes.readableBytes)), piece.readableBytes > 0 {
            try channel.writeInbound(piece)
        }
        let frame = try #require(try channel.readInbound(as: Frame.self))
        #expect(frame.kind == .message)
        #expect(frame.stream == 7)
        guard case .heartbeat(let health) = try MessageCoding.decode(frame.payload) else {
            Issue.record("wrong message")
            return
        }
        #expect(health.bootID == "b")
    }

    @Test func oversizeFramesAreRejectedBeforeBuffering() throws {
        let channel = try decoderChannel()
        var header = ByteBuffer()
        header.writeInteger(UInt32(Frame.maxPayload + 6))
        header.writeInteger(FrameKind.data.rawValue)
        #expect(throws: WireError.frameTooLarge(size: Frame.maxPayload + 6, limit: Frame.maxPayload + 5)) {
            try channel.writeInbound(header)
        }
    }

    @Test func unknownKindsAndShortHeadersAreProtocolErrors() throws {
        var unknown = ByteBuffer()
        unknown.writeInteger(UInt32(5))
        unknown.writeInteger(UInt8(99))
        #expect(throws: WireError.unknownFrameKind(99)) { try decoderChannel().writeInbound(unknown) }
        var short = ByteBuffer()
        short.writeInteger(UInt32(2))
        #expect(throws: WireError.truncatedFrame("length 2 is shorter than its header")) { try decoderChannel().writeInbound(short) }
    }

    @Test func theEncoderRefusesToWriteOversizeFrames() {
        let big = ByteBuffer(repeating: 0, count: Frame.maxPayload + 1)
        #expect(throws: WireError.frameTooLarge(size: Frame.maxPayload + 1, limit: Frame.maxPayload)) {
            try encoded(Frame(kind: .data, stream: 1, payload: big))
        }
    }

    @Test func malformedMessagesSayWhatIsWrong() {
        #expect(throws: WireError.malformedMessage("not valid JSON")) { try MessageCoding.decode(ByteBuffer(string: "{nope")) }
        #expect(throws: WireError.self) { try MessageCoding.decode(ByteBuffer(string: #"{"unknownCase":{}}"#)) }
    }

    @Test func protocolVersionsOutsideTheRangeAreRejected() throws {
        try ProtocolVersion.check(ProtocolVersion.current)
        #expect(throws: WireError.unsupportedVersion(peer: 2, supported: 1...1)) { try ProtocolVersion.check(2) }
        #expect(WireError.unsupportedVersion(peer: 2, supported: 1...1).description == "protocol version 2 is not supported (supported: 1...1)")
    }

    @Test func execResultsMapToShellStatuses() {
        #expect(ExecResult(jobID: "j", outcome: .completed, exitCode: 7).shellStatus == 7)
        #expect(ExecResult(jobID: "j", outcome: .completed, signal: 9).shellStatus == 137)
        #expect(ExecResult(jobID: "j", outcome: .timedOut, signal: 15).shellStatus == 124)
        #expect(ExecResult(jobID: "j", outcome: .failedToStart, error: "x").shellStatus == 127)
        #expect(ExecResult(jobID: "j", outcome: .completed, signal: 9).summary == "killed by signal 9")
    }
}
