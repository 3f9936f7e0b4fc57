import CLibvirt
import Foundation

/// A blocking libvirt data stream, used for volume uploads.
public final class Stream: @unchecked Sendable {
    let connection: Connection
    let pointer: OpaquePointer
    private var finished = false

    init(connection: Connection, pointer: OpaquePointer) {
        self.connection = connection
        self.pointer = pointer
    }

    deinit {
        if !finished { virStreamAbort(pointer) }
        virStreamFree(pointer)
    }

    /// Sends all of `bytes` in chunks, then finishes the stream; on failure the stream is aborted.
    func sendAll(_ bytes: Data, operation: String) async throws {
        try await connection.check(operation) {
            let chunk = 256 << 10
            var offset = 0
            let ok: Bool = bytes.withUnsafeBytes { raw in
                while offset < raw.count {
                    let length = min(chunk, raw.count - offset)
                    let sent = virStreamSend(self.pointer, raw.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), length)
                    if sent < 0 { return false }
                    offset += Int(sent)
                }
                return true
            }
            guard ok else { return -1 }
            return virStreamFinish(self.pointer)
        }
        finished = true
    }

    /// Receives the stream to its end, then finishes it. More than `limit` bytes aborts it: what a
    /// hypervisor sends is bounded too.
    func receiveAll(limit: Int, operation: String) async throws -> Data {
        let data: Data = try await connection.run(operation) {
            var data = Data()
            var buffer = [CChar](repeating: 0, count: 256 << 10)
            while true {
                let received = virStreamRecv(self.pointer, &buffer, buffer.count)
                if received < 0 { return nil }
                if received == 0 { break }
                guard data.count + Int(received) <= limit else { return nil }
                buffer.withUnsafeBytes { data.append($0.baseAddress!.assumingMemoryBound(to: UInt8.self), count: Int(received)) }
            }
            return virStreamFinish(self.pointer) == 0 ? data : nil
        }
        finished = true
        return data
    }
}
