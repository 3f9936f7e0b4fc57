import Foundation

/// The first `<graphics>` element of a domain's XML, read for its type, socket and password.
public struct GraphicsXML: Sendable, Equatable {
    public var type: String
    public var socket: String?
    public var password: String?

    public init?(domainXML xml: String) {
        guard let start = xml.range(of: "<graphics "), let end = xml.range(of: ">", range: start.upperBound..<xml.endIndex) else { return nil }
        let element = String(xml[start.upperBound..<end.lowerBound])
        func attribute(_ name: String) -> String? {
            guard let match = element.range(of: "\(name)=['\"][^'\"]*['\"]", options: .regularExpression) else { return nil }
            let quoted = element[match].dropFirst(name.count + 1)
            return XMLText.unescape(String(quoted.dropFirst().dropLast()))
        }
        guard let type = attribute("type") else { return nil }
        self.type = type
        socket = attribute("socket")
        password = attribute("passwd")
    }
}

/// Whether a domain has a screen to show and type on: a display device (`<video>` of a model other than
/// `none`) or a graphical console. A domain without either takes no screenshot and no keys that anyone sees.
public enum DomainScreen {
    public static func exists(inDomainXML xml: String) -> Bool {
        if xml.contains("<graphics ") { return true }
        guard xml.range(of: "<video") != nil else { return false }
        return xml.range(of: "<model type=['\"]none['\"]", options: .regularExpression) == nil
    }
}
