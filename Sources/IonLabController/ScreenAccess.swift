import IonLabPictures

/// What steps need of a VM's screen through its hypervisor, with nothing in the guest taking part: the screen
/// as a picture, keys pressed on its keyboard, its pointer stirred. The controller's is its ``VMManager``
/// over libvirt; the controller's unit tests use a fake.
protocol ScreenAccess: Sendable {
    /// The screen as the hypervisor shows it now.
    func screen(of vm: String) async throws -> Picture
    /// Presses each stroke (Linux keycodes held together), in order.
    func press(_ strokes: [[UInt32]], on vm: String) async throws
    /// Moves the pointer a few pixels back and forth for `seconds`: a compositor that sends a screen-cast
    /// frame only when the screen changes (wlroots does) then sends frames, as it would for a person at it.
    func stirPointer(of vm: String, for seconds: Double) async throws
}
