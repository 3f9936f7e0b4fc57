import IonLabProvision
import Testing

/// How the hypervisor's US keyboard types: keysyms as Linux keycodes, Shift where a character needs it.
@Suite struct HypervisorKeyboardTests {
    @Test func chordsAreTheirKeysPressedTogether() throws {
        #expect(try HypervisorKeyboard.chord([0xFFEB, 0xFF0D]) == [125, 28])  // super+Return
        #expect(try HypervisorKeyboard.chord([0xFFE3, 0xFFE9, 0x74]) == [29, 56, 20])  // ctrl+alt+t
        #expect(try HypervisorKeyboard.chord([0xFFE3, 0x54]) == [29, 42, 20])  // ctrl+T: Shift added for the capital
        #expect(try HypervisorKeyboard.chord([0xFFE1, 0x54]) == [42, 20])  // shift+T: Shift once
        #expect(try HypervisorKeyboard.chord([0xFFBE, 0xFFC9]) == [59, 88])  // F1, F12
        #expect(throws: KeyboardError("keysym 0xe9 has no key on the hypervisor's US keyboard")) { try HypervisorKeyboard.chord([0xE9]) }
    }

    @Test func textIsAStrokePerCharacterWithShiftWhereItNeedsIt() throws {
        #expect(try HypervisorKeyboard.strokes(typing: "Hi!\n") == [[42, 35], [23], [42, 2], [28]])
        #expect(try HypervisorKeyboard.strokes(typing: "a-b_c") == [[30], [12], [48], [42, 12], [46]])
        #expect(try HypervisorKeyboard.strokes(typing: "~/x y\t") == [[42, 41], [53], [45], [57], [21], [15]])
        let every = (0x20...0x7E).map { Character(Unicode.Scalar($0)!) }
        #expect(try HypervisorKeyboard.strokes(typing: String(every)).count == every.count, "every printable ASCII character has a key")
        #expect(throws: KeyboardError("'é' cannot be typed on the hypervisor's US keyboard (printable ASCII, tabs and line breaks only)")) {
            try HypervisorKeyboard.strokes(typing: "café")
        }
        #expect(throws: KeyboardError("'U+1B' cannot be typed on the hypervisor's US keyboard (printable ASCII, tabs and line breaks only)")) {
            try HypervisorKeyboard.strokes(typing: "\u{1B}[2J")
        }
    }

    @Test func aDomainHasAScreenWithADisplayOrAConsole() {
        #expect(DomainScreen.exists(inDomainXML: "<domain><devices><graphics type='vnc'/></devices></domain>"))
        #expect(DomainScreen.exists(inDomainXML: "<domain><devices><video><model type='virtio'/></video></devices></domain>"))
        #expect(!DomainScreen.exists(inDomainXML: "<domain><devices><video><model type='none'/></video></devices></domain>"))
        #expect(!DomainScreen.exists(inDomainXML: "<domain><devices><disk/></devices></domain>"))
    }
}
