import NIOConcurrencyHelpers
import NIOCore

/// What a frame carries. The numbering is part of the wire format.
public enum FrameKind: UInt8, Sendable {
    /// A JSON-encoded ``Message``.
    case message = 1
    /// Raw stream bytes, prefixed by one ``DataChannel`` byte. Consumes flow-control credit.
    case data = 2
    /// A flow-control grant: a big-endian `UInt32` count of bytes the peer may send on the stream.
    case window = 3
    /// The sender abandoned the stream: the receiver fails it at once, ahead of anything still queued to be
    /// sent (HTTP/2's RST_STREAM). Empty payload; never flow-controlled.
    case reset = 4
}

/// Which byte stream a data frame belongs to inside one request stream.
public enum DataChannel: UInt8, Sendable, Codable {
    /// File contents or a process's stdin.
    case content = 0
    case stdout = 1
    case stderr = 2
}

/// One unit on the wire: `[u32 length][u8 kind][u32 stream][payload]`, where length counts kind,
/// stream and payload. Stream 0 is the connection itself; requests open streams with other ids.
public struct Frame: Sendable {
    public var kind: FrameKind
    public var stream: UInt32
    public var payload: ByteBuffer

    public init(kind: FrameKind, stream: UInt32, payload: ByteBuffer) {
        self.kind = kind
        self.stream = stream
        self.payload = payload
    }

    /// Bytes of header before the payload (length, kind, stream).
    public static let headerSize = 9
    /// The hard limit on a frame's payload. Larger frames are a protocol error.
    public static let maxPayload = 1 << 20
    /// The limit before a peer has authenticated: enough for a hello and an enrollment, little to hoard.
    public static let unauthenticatedMaxPayload = 64 << 10
    /// The largest data chunk a sender puts in one frame.
    public static let maxDataChunk = 256 << 10
}

/// Protocol violations. Each closes the connection it happened on, never the process.
public enum WireError: Error, CustomStringConvertible, Equatable, Sendable {
    case frameTooLarge(size: Int, limit: Int)
    case unknownFrameKind(UInt8)
    case truncatedFrame(String)
    case malformedMessage(String)
    case unexpected(String)
    case flowControlViolation(stream: UInt32, bytes: Int, credit: Int)
    case connectionClosed
    case unsupportedVersion(peer: Int, supported: ClosedRange<Int>)
    /// The peer abandoned the stream.
    case streamReset(UInt32)
    /// This side has used up its stream ids; the connection must be replaced.
    case streamIDsExhausted
    /// A field of a peer's message is out of range or shape.
    case invalidField(String, String)

    public var description: String {
        switch self {
        case .frameTooLarge(let size, let limit):
            return "protocol error: frame of \(size) bytes exceeds the maximum of \(limit)"
        case .unknownFrameKind(let kind):
            return "protocol error: unknown frame kind \(kind)"
        case .truncatedFrame(let what):
            return "protocol error: truncated frame (\(what))"
        case .malformedMessage(let why):
            return "protocol error: malformed message: \(why)"
        case .unexpected(let what):
            return "protocol error: unexpected \(what)"
        case .flowControlViolation(let stream, let bytes, let credit):
            return "protocol error: \(bytes) bytes on stream \(stream) exceed its credit of \(credit)"
        case .connectionClosed:
            return "connection closed"
        case .unsupportedVersion(let peer, let supported):
            return "protocol version \(peer) is not supported (supported: \(supported.lowerBound)...\(supported.upperBound))"
        case .streamReset(let stream):
            return "the peer abandoned stream \(stream)"
        case .streamIDsExhausted:
            return "this connection has used all its stream ids"
        case .invalidField(let field, let problem):
            return "protocol error: \(field): \(problem)"
        }
    }
}

/// The largest frame payload a connection accepts now: small until the peer has authenticated, then
/// ``Frame/maxPayload``. Shared by the connection's decoder and its owner, which raises it.
public final class FrameSizeLimit: Sendable {
    private let value: NIOLockedValueBox<Int>

    public init(_ bytes: Int = Frame.maxPayload) { value = NIOLockedValueBox(bytes) }

    public var bytes: Int { value.withLockedValue { $0 } }

    /// Allows frames of up to `bytes` from now on (never more than ``Frame/maxPayload``).
    public func raise(to bytes: Int = Frame.maxPayload) {
        value.withLockedValue { $0 = min(bytes, Frame.maxPayload) }
    }
}

/// Splits the inbound byte stream into frames, rejecting oversize or unknown frames before buffering them.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    private let limit: FrameSizeLimit

    public init(limit: FrameSizeLimit = FrameSizeLimit()) { self.limit = limit }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.next(from: &buffer, maxPayload: limit.bytes) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    /// Takes one whole frame off the front of `buffer`, nil if it holds only part of one. The header is
    /// checked before anything is buffered: an oversize length or an unknown kind fails at once.
    public static func next(from buffer: inout ByteBuffer, maxPayload: Int = Frame.maxPayload) throws -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let bodyLength = Int(length)
        guard bodyLength <= maxPayload + 5 else {
            throw WireError.frameTooLarge(size: bodyLength, limit: maxPayload + 5)
        }
        guard bodyLength >= 5 else { throw WireError.truncatedFrame("length \(bodyLength) is shorter than its header") }
        if let rawKind = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self), FrameKind(rawValue: rawKind) == nil {
            throw WireError.unknownFrameKind(rawKind)
        }
        guard buffer.readableBytes >= 4 + bodyLength else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let kind = FrameKind(rawValue: buffer.readInteger(as: UInt8.self)!)!
        let stream = buffer.readInteger(as: UInt32.self)!
        let payload = buffer.readSlice(length: bodyLength - 5)!
        return Frame(kind: kind, stream: stream, payload: payload)
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Writes frames with their length prefix.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        guard frame.payload.readableBytes <= Frame.maxPayload else {
            throw WireError.frameTooLarge(size: frame.payload.readableBytes, limit: Frame.maxPayload)
        }
        out.reserveCapacity(Frame.headerSize + frame.payload.readableBytes)
        out.writeInteger(UInt32(5 + frame.payload.readableBytes))
        out.writeInteger(frame.kind.rawValue)
        out.writeInteger(frame.stream)
        var payload = frame.payload
        out.writeBuffer(&payload)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the frame decoder and encoder, so the channel reads and writes ``Frame`` values.
    public func addFrameCodec(limit: FrameSizeLimit = FrameSizeLimit()) throws {
        try addHandler(ByteToMessageHandler(FrameDecoder(limit: limit), maximumBufferSize: Frame.maxPayload + 64))
        try addHandler(MessageToByteHandler(FrameEncoder()))
    }
}
