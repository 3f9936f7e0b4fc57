#if canImport(Glibc)
import Glibc
#endif

/// A thread of its own for work that blocks (waiting for a child, a kill loop with pauses), so no event
/// loop or task thread waits. A pthread, since FoundationEssentials has no `Thread`.
enum DetachedThread {
    private final class Work {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    static func start(_ body: @escaping @Sendable () -> Void) {
        let work = Unmanaged.passRetained(Work(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            Unmanaged<Work>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, work)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            // No thread to be had: the work still happens, on the caller's.
            Unmanaged<Work>.fromOpaque(work).takeRetainedValue().body()
        }
    }
}
