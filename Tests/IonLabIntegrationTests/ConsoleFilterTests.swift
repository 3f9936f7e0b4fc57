import IonLabAdminAPI
import Testing

/// A guest writes its serial console, and `ionlab logs --console` prints it on the operator's terminal: the
/// filter lets colours through and shows everything else that could drive the terminal as visible escapes.
@Suite struct ConsoleFilterTests {
    func filtered(_ text: String, in pieces: Int = 1) -> String {
        var filter = ConsoleFilter()
        let bytes = Array(text.utf8)
        let size = max(1, (bytes.count + pieces - 1) / pieces)
        var out: [UInt8] = []
        for start in stride(from: 0, to: bytes.count, by: size) { out += filter.filter(bytes[start..<min(start + size, bytes.count)]) }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func coloursPassAndLineEndingsAreTidied() {
        #expect(filtered("[\u{1B}[0;32m  OK  \u{1B}[0m] Started\r\n") == "[\u{1B}[0;32m  OK  \u{1B}[0m] Started\n")
    }

    @Test func everythingElseIsShownNotObeyed() {
        #expect(filtered("\u{1B}]0;owned\u{07}") == "\\x1B]0;owned\\x07")      // a window title
        #expect(filtered("\u{1B}[2J\u{1B}[H") == "\\x1B[2J\\x1B[H")             // clear and home
        #expect(filtered("a\rb") == "a\\x0Db")                                  // a bare carriage return
        #expect(filtered("\u{9B}2J") == "\\xC2\\x9B2J")                         // a C1 CSI in UTF-8
        #expect(filtered("é ✓") == "é ✓")
    }

    @Test func sequencesSplitAcrossReadsAreJudgedWhole() {
        let text = "x\u{1B}[31mred\u{1B}[0m\u{1B}]2;t\u{07}\r\n\u{9B}"
        for pieces in 1...text.utf8.count { #expect(filtered(text, in: pieces) == filtered(text), "in \(pieces) pieces") }
    }
}
