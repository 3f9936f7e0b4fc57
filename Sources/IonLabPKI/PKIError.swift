/// Certificate, key and token problems, each a one-line explanation.
public struct PKIError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
