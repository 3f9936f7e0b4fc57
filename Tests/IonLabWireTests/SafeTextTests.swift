import Foundation
import IonLabWire
import Testing

@Suite struct SafeTextTests {
    /// Every scalar the terminal could act on, in a JSON string, comes out as a JSON escape of itself.
    @Test(arguments: ["\u{7F}", "\u{80}", "\u{9B}", "\u{9F}", "\u{200E}", "\u{202E}", "\u{2066}", "\u{061C}", "plain é ✓"])
    func jsonStaysJSONAndDecodesToWhatWasSent(text: String) throws {
        let json = SafeText.jsonEscaped(String(decoding: try JSONEncoder().encode(["text": text]), as: UTF8.self))
        #expect(try JSONDecoder().decode([String: String].self, from: Data(json.utf8))["text"] == text)
        #expect(SafeText.escaped(json) == json, "a scalar the terminal escapes is left in \(json)")
    }

    @Test func jsonWithoutUnsafeScalarsIsLeftAlone() {
        let json = #"{"a":"b\u001b","c":[1,2]}"#
        #expect(SafeText.jsonEscaped(json) == json)
        #expect(SafeText.jsonEscaped(#""\#u{9B}""#) == #""\u009b""#)
    }
}
