import IonLabAdminAPI
import IonLabConfig
import IonLabPictureTools
import IonLabPictures
import IonLabProvision
import IonLabSpec

/// A VM's desktop driven through its hypervisor, as a person at its console would: keys pressed on its
/// keyboard (virDomainSendKey) and text read off its screen (the screenshot API, then OCR on this host).
/// `ionlab desktop key | type | wait-text` and the `desktop` step both come here.
struct DesktopDriver {
    let screens: ScreenAccess
    /// `STATE/pictures`, where the screen a wait read last is kept; nil keeps none.
    let pictures: String?
    let store: Store?

    func perform(_ input: DesktopInput, on vm: String) async throws -> DesktopResult {
        let clock = ContinuousClock()
        let started = clock.now
        switch input {
        case .key(let chord):
            let codes = try HypervisorKeyboard.chord(chord.keysyms)
            let before = try await screens.screen(of: vm)
            try await screens.press([codes], on: vm)
            let settled = try await ScreenSettling(take: { [screens] in try await screens.screen(of: vm) }).settle(after: before)
            let reaction = settled.changedAfter.map { "the screen changed after \($0.oneDecimal) s and settled" } ?? "the screen did not change within \(ScreenSettling.changePatience.seconds.oneDecimal) s"
            return DesktopResult(summary: "pressed \(chord.description); \(reaction)", seconds: (clock.now - started).seconds)
        case .type(let text):
            try await screens.press(try HypervisorKeyboard.strokes(typing: text), on: vm)
            return DesktopResult(summary: "typed \(text.count) character(s)", seconds: (clock.now - started).seconds)
        case .waitText(let text, let within):
            let outcome = try await ScreenTextWait(take: { [screens] in try await screens.screen(of: vm) }).wait(for: text, within: Double(within))
            let path = try keep(outcome.picture, of: vm)
            let read = Format.oneLine(outcome.read.oneLine, limit: 400)
            let summary = outcome.found
                ? "read '\(text)' after \(outcome.seconds.oneDecimal) s (\(outcome.readings) reading(s), the last in \(outcome.read.seconds.oneDecimal) s)"
                : "'\(text)' is not on the screen after \(outcome.seconds.oneDecimal) s (\(outcome.readings) reading(s)); OCR read: '\(read)'"
            return DesktopResult(summary: summary, found: outcome.found, read: read, seconds: outcome.seconds, picture: path)
        }
    }

    /// Keeps the screen a wait read last as the VM's `picture.screen_text`.
    private func keep(_ picture: Picture, of vm: String) throws -> String? {
        guard let pictures else { return nil }
        let path = try VMPictures(root: pictures, vm: vm).save(picture, as: "screen-text")
        try store?.recordFacts([PictureFacts.prefix + "screen_text": path], vm: vm)
        return path
    }
}
