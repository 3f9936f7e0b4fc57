import NIOConcurrencyHelpers

/// Unstructured tasks that can all be cancelled at once; each leaves the set when it ends.
final class TaskSet: Sendable {
    private let tasks = NIOLockedValueBox<[UInt32: Task<Void, Never>]>([:])

    func run(id: UInt32, _ body: @escaping @Sendable () async -> Void) {
        tasks.withLockedValue { all in
            all[id] = Task { [tasks] in
                await body()
                _ = tasks.withLockedValue { $0.removeValue(forKey: id) }
            }
        }
    }

    func cancelAll() {
        for task in tasks.withLockedValue({ Array($0.values) }) { task.cancel() }
    }
}
