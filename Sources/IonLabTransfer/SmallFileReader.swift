import Crypto
import IonLabAgentProtocol
import IonLabWire
import NIOCore

/// Takes one small file that a peer streams as a tree (``TreeSender``, not recursive) into memory, for what
/// the controller must read from a guest without it touching a disk or a log: a VNC password. Synchronous
/// and free of any stream, like ``TreeWriter``, and as wary: the file must be the tree's only item, a regular
/// file within `limit` bytes as announced and as received, with the checksum it was sent with.
public struct SmallFileReader {
    public let path: String
    public let limit: Int
    private var size: Int?
    private var content: [UInt8] = []
    private var ended = false

    public init(path: String, limit: Int) {
        self.path = path
        self.limit = limit
    }

    /// Takes the next item; returns the file's bytes once the tree has ended.
    public mutating func handle(_ item: StreamItem<AgentStreamMessage>) throws -> [UInt8]? {
        switch item {
        case .data(.content, let bytes):
            guard let size, !ended else { throw TransferError("\(path): file data outside the file") }
            guard content.count + bytes.readableBytes <= size else { throw TransferError("\(path): more bytes than the \(size) announced") }
            content += bytes.readableBytesView
            return nil
        case .data(let channel, _):
            throw TransferError("\(path): \(channel) data in a transfer")
        case .message(.entry(let entry)):
            guard size == nil else { throw TransferError("\(path): more than one file in the transfer") }
            guard entry.path.isEmpty, entry.kind == .file else { throw TransferError("\(path) is not a regular file") }
            guard entry.size <= UInt64(limit) else { throw TransferError("\(path) is \(entry.size) bytes long; at most \(limit) are read") }
            size = Int(entry.size)
            return nil
        case .message(.fileEnd(let digest)):
            guard let size, !ended else { throw TransferError("\(path): fileEnd outside the file") }
            guard content.count == size, SHA256.hash(data: content).hexString == digest.lowercased() else {
                throw TransferError("\(path): checksum mismatch")
            }
            ended = true
            return nil
        case .message(.treeEnd):
            guard ended else { throw TransferError("\(path): the transfer ended before the file did") }
            return content
        case .message(.failure(let failure)):
            throw TransferError("sender failed: \(failure.message)")
        case .message(let other):
            throw WireError.unexpected("\(other.name) in a transfer")
        }
    }
}
