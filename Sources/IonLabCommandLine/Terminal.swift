import Foundation
import IonLabAdminAPI

/// Where the CLI's text goes. Names, messages and outputs in it may come from a guest, so control
/// characters are escaped on the way out: nothing a peer sends can drive the operator's terminal. (The
/// output of `ionlab exec` is the exception: the command's own bytes, passed through as ssh does.)
public enum Terminal {
    /// A line (or lines) on stdout; newlines and tabs stay, every other control character is escaped.
    public static func line(_ text: String = "", terminator: String = "\n") {
        Swift.print(Format.escaped(text, keepingNewlines: true), terminator: terminator)
    }

    /// Pushes what was printed to the terminal now (a live listing, line by line).
    public static func flush() {
        fflush(nil)
    }

    /// A line on stderr, likewise escaped.
    public static func error(_ text: String) {
        FileHandle.standardError.write(Data((Format.escaped(text, keepingNewlines: true) + "\n").utf8))
    }

    /// The terminal's width, for cutting live lines so they never wrap.
    public static func columns() -> UInt16 {
        var size = winsize()
        return ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? size.ws_col : 100
    }
}
