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
        let payload = try MessageCoding.encode(Note.text(String(repeating: "b", count: 100)))
        var bytes = try encoded(Frame(kind: .message, stream: 7, payload: payload))
        while let piece = bytes.readSlice(length: min(3, bytes.readableBytes)), piece.readableBytes > 0 {
            try channel.writeInbound(piece)
        }
        let frame = try #require(try channel.readInbound(as: Frame.self))
        #expect(frame.kind == .message)
        #expect(frame.stream == 7)
        #expect(try MessageCoding.decode(frame.payload, as: Note.self) == .text(String(repeating: "b", count: 100)))
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
        #expect(throws: WireError.malformedMessage("not valid JSON")) { try MessageCoding.decode(ByteBuffer(string: "{nope"), as: Note.self) }
        #expect(throws: WireError.self) { try MessageCoding.decode(ByteBuffer(string: #"{"unknownCase":{}}"#), as: Note.self) }
    }

    @Test func decodingRunsTheVocabularysChecks() throws {
        let negative = try MessageCoding.encode(Note.number(-1))
        #expect(throws: WireError.invalidField("number", "must not be negative")) { try MessageCoding.decode(negative, as: Note.self) }
    }

    /// A message that has no place on a connection does not decode there: an end that accepts no streams
    /// fails a peer's opening as a protocol error.
    @Test func anEndThatAcceptsNoStreamsRefusesAnOpening() throws {
        let (writer, _) = NIOAsyncChannelOutboundWriter<Frame>.makeTestingWriter()
        defer { writer.finish() }
        let mux = MuxConnection<ClosedPeer>(writer: writer, side: .controller)
        let opening = Frame(kind: .message, stream: 1, payload: try MessageCoding.encode(Note.text("open")))
        #expect(throws: WireError.self) { try mux.route(opening) }
    }
}
