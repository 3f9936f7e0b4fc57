#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// JSON coding of ``WireMessage`` values into frame payloads.
public enum MessageCoding {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        return encoder
    }()
    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }()

    public static func encode<Message: WireMessage>(_ message: Message, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        let bytes = try encoder.encode(message)
        guard bytes.count <= Frame.maxPayload else {
            throw WireError.frameTooLarge(size: bytes.count, limit: Frame.maxPayload)
        }
        return allocator.buffer(bytes: bytes)
    }

    /// Decodes a message and checks its fields (``WireMessage/check()``): whatever a peer sends is bounded
    /// before anyone uses it.
    public static func decode<Message: WireMessage>(_ payload: ByteBuffer, as type: Message.Type = Message.self) throws -> Message {
        let message: Message
        do {
            message = try decoder.decode(Message.self, from: Data(payload.readableBytesView))
        } catch let error as DecodingError {
            throw WireError.malformedMessage(Self.describe(error))
        } catch {
            throw WireError.malformedMessage("\(error)")
        }
        try message.check()
        return message
    }

    /// A one-line account of a decoding failure.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map(\.stringValue).joined(separator: ".")
            return keys.isEmpty ? "" : " at \(keys)"
        }
        switch error {
        case .dataCorrupted(let context): return "not valid JSON\(path(context))"
        case .keyNotFound(let key, let context): return "missing field '\(key.stringValue)'\(path(context))"
        case .typeMismatch(_, let context): return "wrong type\(path(context)): \(context.debugDescription)"
        case .valueNotFound(_, let context): return "missing value\(path(context))"
        @unknown default: return "\(error)"
        }
    }
}
