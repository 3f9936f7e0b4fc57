import Foundation
import IonLabAdminAPI
import IonLabRFB
import NIOConcurrencyHelpers

/// The pointer of a VM's graphical console, moved from the controller: RFB on the socket libvirt hands over
/// to the hypervisor's VNC server (virDomainOpenGraphicsFD, its password skipped), so nothing in the guest
/// takes part and nothing listens anywhere. The console speaks no more than a handshake and pointer events here.
enum ConsolePointer {
    /// How far the pointer moves each way, in pixels of the console, and how often.
    static let step = 12
    static let interval: Duration = .milliseconds(50)

    /// Handshakes on `descriptor` (which it closes), then moves the pointer back and forth near the screen's
    /// bottom right for `seconds`, or until the task is cancelled.
    static func stir(descriptor: Int32, seconds: Double) async throws {
        let stop = NIOLockedValueBox(false)
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                Thread {
                    defer { close(descriptor) }
                    do {
                        try stirBlocking(descriptor, seconds: seconds, stop: stop)
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }.start()
            }
        } onCancel: {
            stop.withLockedValue { $0 = true }
        }
    }

    private static func stirBlocking(_ descriptor: Int32, seconds: Double, stop: NIOLockedValueBox<Bool>) throws {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var client = RFBClient(password: nil)
        var size: (width: Int, height: Int)?
        var buffer = [UInt8](repeating: 0, count: 4096)
        while size == nil {
            let count = read(descriptor, &buffer, buffer.count)
            guard count > 0 else {
                throw ControllerError("the VM's graphical console " + (count == 0 ? "closed during its handshake" : "did not finish its handshake within 10 s"))
            }
            let step = try client.receive(buffer[0..<count])
            try write(step.send, to: descriptor)
            for case .ready(let width, let height, _) in step.events { size = (width, height) }
        }
        guard let size else { return }
        let (x, y) = (max(0, size.width - 4 * step), max(0, size.height - 4 * step))
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(seconds * 1000))
        var away = false
        while clock.now < end, !stop.withLockedValue({ $0 }) {
            away.toggle()
            try write(RFBClient.pointer(x: away ? x - step : x, y: y), to: descriptor)
            Thread.sleep(forTimeInterval: Double(interval.components.attoseconds) / 1e18)
        }
        try write(RFBClient.pointer(x: x, y: y), to: descriptor)
    }

    private static func write(_ bytes: [UInt8], to descriptor: Int32) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            guard written > 0 else { throw ControllerError("the VM's graphical console stopped taking input") }
            offset += written
        }
    }
}
