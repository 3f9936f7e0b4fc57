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
}
