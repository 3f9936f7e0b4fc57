"""portal-session.py USER OUTDIR SECONDS [KEYSYMS MARKER]

The guest side of the `portal_session` probe: a ScreenCast session through xdg-desktop-portal's frontend
(org.freedesktop.portal.ScreenCast: CreateSession, SelectSources for one monitor, Start, OpenPipeWireRemote),
as USER on USER's session bus, the way a remote-desktop app asks for the screen. Frames come from PipeWire
through GStreamer's pipewiresrc. It counts the frames of SECONDS after the first, and keeps pictures in OUTDIR
(made here, USER's, 0700; it must not exist): first.png, a frame-NN.png about every second (at most 10), and
last.png, the screen once it has settled.

With KEYSYMS (X keysyms in decimal, comma-separated: the keys that open a terminal, pressed together) and
MARKER (printable ASCII), it also opens a RemoteDesktop session through the frontend (CreateSession,
SelectDevices for keyboard and pointer, Start), presses KEYSYMS, and types MARKER and Return through
NotifyKeyboardKeysym; last.png is then the screen after that input.

The verdict is not this script's: the controller compares last.png with the hypervisor's screenshot and reads
its text. This reports what happened, one JSON line on fd 3 (stdout when fd 3 is not open):
  {"ok": true, "steps": {"CreateSession": 0.05, …}, "setup_seconds": …, "first_frame_seconds": …,
   "frames": …, "window_seconds": …, "width": …, "height": …, "node": …, "cursor_mode": …,
   "devices": null or the granted device types, "input_to_frame_seconds": null or …, "pictures": ["first.png", …]}
or, when a step failed, {"ok": false, "step": "SelectSources", "detail": "…", "steps": {…}}.
Exits 0 when the session ran, 1 when a step failed (the report says which), 2 on bad arguments.
"""
import json
import os
import struct
import sys
import threading
import time
import zlib

PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
RESPONSE_PATIENCE = 30
FIRST_FRAME_PATIENCE = 20
# The screen has settled when no frame came for this long (wlroots sends a frame only when the screen changes).
SETTLED_AFTER = 1.5
SETTLE_PATIENCE = 20
KEPT_FRAMES = 10
KEPT_SPACING = 1.0
RESPONSES = {1: "the request was cancelled (by the user, or by a chooser the backend runs)",
             2: "the backend ended the request"}


class Failure(Exception):
    def __init__(self, step, detail):
        super().__init__(detail)
        self.step, self.detail = step, detail


BEGAN = time.monotonic()


def progress(text):
    """A line on stderr, which the job's output keeps: what happened when, for a person reading a failure."""
    print(f"portal-session: {time.monotonic() - BEGAN:6.2f} s  {text}", file=sys.stderr, flush=True)


def report_descriptor():
    try:
        os.fstat(3)
        return os.fdopen(3, "w")
    except OSError:
        return sys.stdout


def malformed(message):
    print(f"portal-session.py: {message}", file=sys.stderr)
    sys.exit(2)


def png(width, height, stride, data):
    """An 8-bit RGB PNG of the rows of `data` (each `stride` bytes, the first width * 3 of them pixels)."""
    rows = b"".join(b"\x00" + data[y * stride:y * stride + width * 3] for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def become(user, outdir):
    """Makes OUTDIR for USER and runs on as USER, on USER's session bus."""
    import pwd
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise Failure("session bus", f"no user {user}")
    bus = f"/run/user/{account.pw_uid}/bus"
    os.mkdir(outdir, 0o700)
    if os.getuid() != account.pw_uid:
        os.chown(outdir, account.pw_uid, account.pw_gid)
        os.initgroups(user, account.pw_gid)
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
        # Changing user left this process undumpable, so its /proc entries are root's: the portal reads
        # /proc/PID/root to tell a sandboxed app from a host one, and refuses what it cannot open.
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
    os.environ.update(HOME=account.pw_dir, USER=user, XDG_RUNTIME_DIR=f"/run/user/{account.pw_uid}")
    if os.getuid() == account.pw_uid and "IONLAB_SESSION_BUS" in os.environ:
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = os.environ["IONLAB_SESSION_BUS"]  # a test's private bus
    else:
        if not os.path.exists(bus):
            raise Failure("session bus", f"{user} has no session bus ({bus}): no graphical session was started for {user}")
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={bus}"


class Frames:
    """The frames PipeWire delivers, counted, with the first, the latest and some kept between."""

    def __init__(self):
        self.lock = threading.Condition()
        self.count = 0
        self.first = None
        self.latest = None
        self.first_at = None
        self.latest_at = None
        self.kept = []
        self.error = None

    def add(self, frame):
        now = time.monotonic()
        with self.lock:
            self.count += 1
            if self.first is None:
                self.first, self.first_at = frame, now
            if len(self.kept) < KEPT_FRAMES and (not self.kept or now - self.kept[-1][0] >= KEPT_SPACING):
                self.kept.append((now, frame))
            self.latest, self.latest_at = frame, now
            self.lock.notify_all()

    def fail(self, message):
        with self.lock:
            self.error = message
            self.lock.notify_all()

    def wait(self, predicate, seconds):
        deadline = time.monotonic() + seconds
        with self.lock:
            while not predicate():
                if self.error:
                    raise Failure("PipeWire", self.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # In slices: a predicate about time ("no frame for 1.5 s") comes true with no frame to wake it.
                self.lock.wait(min(left, 0.1))
            return True

    def settle(self, since, seconds):
        """Waits for a frame after `since`, then for none to come for SETTLED_AFTER; False if none came."""
        if not self.wait(lambda: self.latest_at is not None and self.latest_at > since, seconds):
            return False
        self.wait(lambda: time.monotonic() - self.latest_at >= SETTLED_AFTER, SETTLE_PATIENCE)
        return True


class Portal:
    """The frontend's requests: each call returns a Request object whose Response signal carries the result."""

    def __init__(self, dbus, bus, glib):
        self.dbus, self.bus, self.glib = dbus, bus, glib
        self.sender = bus.get_unique_name()[1:].replace(".", "_")
        self.serial = 0
        self.object = bus.get_object(PORTAL, PORTAL_PATH)
        self.steps = {}

    def token(self):
        self.serial += 1
        return f"ionlab{os.getpid()}_{self.serial}"

    def interface(self, name):
        return self.dbus.Interface(self.object, name)

    def property(self, step, interface, name):
        try:
            return self.interface("org.freedesktop.DBus.Properties").Get(interface, name)
        except self.dbus.DBusException as error:
            raise Failure(step, describe(error))

    def request(self, step, call, *arguments, options=None):
        """Calls `call(*arguments, options)` and waits for its Response; returns the results."""
        options = dict(options or {})
        token = self.token()
        options["handle_token"] = token
        path = f"{PORTAL_PATH}/request/{self.sender}/{token}"
        loop = self.glib.MainLoop()
        answer = {}

        def on_response(code, results):
            answer.update(code=int(code), results=results)
            loop.quit()

        started = time.monotonic()
        match = self.bus.add_signal_receiver(on_response, "Response", "org.freedesktop.portal.Request", PORTAL, path)
        try:
            try:
                call(*arguments, self.dbus.Dictionary(options, signature="sv"))
            except self.dbus.DBusException as error:
                raise Failure(step, describe(error))
            expired = []

            def expire():
                expired.append(True)
                loop.quit()
                return False

            timer = self.glib.timeout_add_seconds(RESPONSE_PATIENCE, expire)
            loop.run()
            if not expired:
                self.glib.source_remove(timer)
        finally:
            match.remove()
        self.steps[step] = round(time.monotonic() - started, 3)
        progress(f"{step}: {answer.get('code', 'no response')} in {self.steps[step]:.3f} s")
        if "code" not in answer:
            raise Failure(step, f"no Response from the portal within {RESPONSE_PATIENCE} s")
        if answer["code"] != 0:
            raise Failure(step, f"the portal answered {answer['code']}: {RESPONSES.get(answer['code'], 'an unknown response')}")
        return answer["results"]

    def call(self, step, call, *arguments):
        started = time.monotonic()
        try:
            result = call(*arguments)
        except self.dbus.DBusException as error:
            raise Failure(step, describe(error))
        self.steps[step] = round(time.monotonic() - started, 3)
        return result


def describe(error):
    name = error.get_dbus_name() or "a D-Bus error"
    message = (error.get_dbus_message() or "").strip().splitlines()
    hint = ""
    if name in ("org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.DBus.Error.UnknownInterface",
                "org.freedesktop.DBus.Error.UnknownObject") or "No such interface" in (message[0] if message else ""):
        hint = " (the frontend has no backend for it: is the backend running, and named in a .portal file?)"
    if name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
        hint = " (xdg-desktop-portal is not running on this session bus)"
    return f"{name}: {message[0] if message else 'no message'}{hint}"


def run(user, outdir, seconds, keysyms, marker, steps):
    become(user, outdir)
    try:
        import dbus
        from dbus.mainloop.glib import DBusGMainLoop
        from gi.repository import GLib
    except ImportError as error:
        raise Failure("tools", f"{error}: the image needs python3-dbus and python3-gi")
    DBusGMainLoop(set_as_default=True)
    try:
        bus = dbus.SessionBus()
    except dbus.DBusException as error:
        raise Failure("session bus", describe(error))
    try:
        portal = Portal(dbus, bus, GLib)
    except dbus.DBusException as error:
        raise Failure("portal", describe(error))
    portal.steps = steps
    screencast = portal.interface("org.freedesktop.portal.ScreenCast")
    began = time.monotonic()

    cursor_modes = int(portal.property("ScreenCast", "org.freedesktop.portal.ScreenCast", "AvailableCursorModes"))
    cursor_mode = 2 if cursor_modes & 2 else 1  # embedded, as the hypervisor's screen shows it; else hidden
    session = portal.request("CreateSession", screencast.CreateSession, options={"session_handle_token": portal.token()})
    session = str(session["session_handle"])
    portal.request("SelectSources", screencast.SelectSources, session,
                   options={"types": dbus.UInt32(1), "multiple": False, "cursor_mode": dbus.UInt32(cursor_mode)})
    streams = portal.request("Start", screencast.Start, session, "").get("streams", [])
    if not streams:
        raise Failure("Start", "the portal started the session with no stream")
    node = int(streams[0][0])
    remote = portal.call("OpenPipeWireRemote", screencast.OpenPipeWireRemote, session, dbus.Dictionary({}, signature="sv"))
    descriptor = remote.take()
    setup = time.monotonic() - began

    try:
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError) as error:
        raise Failure("tools", f"{error}: the image needs gir1.2-gstreamer-1.0 and gstreamer1.0-pipewire")
    frames = Frames()
    Gst.init(None)
    try:
        pipeline = Gst.parse_launch(f"pipewiresrc fd={descriptor} path={node} always-copy=true ! videoconvert ! "
                                    "video/x-raw,format=RGB ! appsink name=sink emit-signals=true sync=false")
    except GLib.Error as error:
        raise Failure("PipeWire", f"GStreamer cannot read PipeWire: {error.message} (gstreamer1.0-pipewire?)")
    shape = {}

    def on_sample(sink):
        sample = sink.emit("pull-sample")
        structure = sample.get_caps().get_structure(0)
        buffer = sample.get_buffer()
        width, height = structure.get_value("width"), structure.get_value("height")
        shape.update(width=width, height=height, stride=buffer.get_size() // height if height else 0)
        frames.add(buffer.extract_dup(0, buffer.get_size()))
        return Gst.FlowReturn.OK

    def on_error(_, message):
        error, _ = message.parse_error()
        frames.fail(f"GStreamer: {error.message}")

    pipeline.get_by_name("sink").connect("new-sample", on_sample)
    # Errors come in GStreamer's own threads: no GLib loop runs meanwhile, the portal's replies need this one's.
    messages = pipeline.get_bus()
    messages.enable_sync_message_emission()
    messages.connect("sync-message::error", on_error)
    opened = time.monotonic()
    pipeline.set_state(Gst.State.PLAYING)
    try:
        if not frames.wait(lambda: frames.first is not None, FIRST_FRAME_PATIENCE):
            raise Failure("PipeWire", f"no frame from node {node} within {FIRST_FRAME_PATIENCE} s")
        first_frame = frames.first_at - opened
        progress(f"first frame {first_frame:.2f} s after the remote opened; counting for {seconds} s")
        frames.wait(lambda: False, seconds)  # the counting window
        counted = frames.count
        devices = input_to_frame = None
        if keysyms:
            devices, input_to_frame = remote_desktop(dbus, portal, frames, keysyms, marker)
        else:
            frames.wait(lambda: time.monotonic() - frames.latest_at >= SETTLED_AFTER, SETTLE_PATIENCE)
    finally:
        pipeline.set_state(Gst.State.NULL)
    try:
        dbus.Interface(bus.get_object(PORTAL, session), "org.freedesktop.portal.Session").Close()
    except dbus.DBusException:
        pass  # the session ends with this connection anyway

    pictures = []
    width, height, stride = shape["width"], shape["height"], shape["stride"]

    def keep(name, frame):
        with open(os.path.join(outdir, name), "wb") as file:
            file.write(png(width, height, stride, frame))
        pictures.append(name)

    keep("first.png", frames.first)
    for number, (_, frame) in enumerate(frames.kept, start=1):
        keep(f"frame-{number:02d}.png", frame)
    keep("last.png", frames.latest)
    return {"ok": True, "steps": steps, "setup_seconds": round(setup, 3), "first_frame_seconds": round(first_frame, 3),
            "frames": counted, "window_seconds": seconds, "width": width, "height": height, "node": node,
            "cursor_mode": cursor_mode, "devices": devices, "input_to_frame_seconds": input_to_frame, "pictures": pictures}


def remote_desktop(dbus, portal, frames, keysyms, marker):
    """Opens a terminal and types MARKER through the frontend's RemoteDesktop; returns the granted device types
    and the seconds from the first key to the first frame that followed."""
    remote = portal.interface("org.freedesktop.portal.RemoteDesktop")
    session = portal.request("RemoteDesktop.CreateSession", remote.CreateSession,
                             options={"session_handle_token": portal.token()})
    session = str(session["session_handle"])
    portal.request("SelectDevices", remote.SelectDevices, session, options={"types": dbus.UInt32(1 | 2)})
    devices = int(portal.request("RemoteDesktop.Start", remote.Start, session, "").get("devices", 0))
    if not devices & 1:
        raise Failure("RemoteDesktop.Start", f"the portal granted no keyboard (device types {devices})")
    options = dbus.Dictionary({}, signature="sv")

    def press(keys):
        for keysym in keys:
            portal.call("NotifyKeyboardKeysym", remote.NotifyKeyboardKeysym, session, options, dbus.Int32(keysym), dbus.UInt32(1))
        for keysym in reversed(keys):
            portal.call("NotifyKeyboardKeysym", remote.NotifyKeyboardKeysym, session, options, dbus.Int32(keysym), dbus.UInt32(0))

    # Keys on a still screen (the pointer the controller moved has stopped), so the first frame after them is theirs.
    frames.wait(lambda: time.monotonic() - frames.latest_at >= SETTLED_AFTER, SETTLE_PATIENCE)
    typed = time.monotonic()
    progress("pressing the terminal's keys")
    press(keysyms)
    if not frames.wait(lambda: frames.latest_at > typed, 15):
        raise Failure("NotifyKeyboardKeysym", "the keys that open a terminal changed nothing on the screen within 15 s")
    input_to_frame = round(frames.latest_at - typed, 3)
    frames.settle(typed, 15)
    progress(f"the screen changed {input_to_frame:.2f} s after the keys and settled; typing the marker")
    for character in marker + "\r":
        press([0xFF0D if character == "\r" else ord(character)])
    progress("typed")
    frames.settle(time.monotonic(), 15)
    progress("settled")
    try:
        dbus.Interface(portal.bus.get_object(PORTAL, session), "org.freedesktop.portal.Session").Close()
    except dbus.DBusException:
        pass
    return devices, input_to_frame


def main():
    arguments = sys.argv[1:]
    if len(arguments) not in (3, 5):
        malformed(f"expected USER OUTDIR SECONDS [KEYSYMS MARKER], found {len(arguments)} argument(s)")
    user, outdir, seconds = arguments[:3]
    if not seconds.isdigit() or not 0 <= int(seconds) <= 60:
        malformed(f"SECONDS must be 0 to 60, found '{seconds}'")
    if not os.path.isabs(outdir):
        malformed(f"OUTDIR must be an absolute path, found '{outdir}'")
    keysyms, marker = [], ""
    if len(arguments) == 5:
        try:
            keysyms = [int(word) for word in arguments[3].split(",")]
        except ValueError:
            malformed(f"KEYSYMS must be decimal keysyms separated by commas, found '{arguments[3]}'")
        marker = arguments[4]
        if not 0 < len(keysyms) <= 4 or not all(0 < k < 0x1000000 for k in keysyms):
            malformed("KEYSYMS takes 1 to 4 keysyms")
        if not 0 < len(marker) <= 64 or not all(0x20 <= ord(c) < 0x7F for c in marker):
            malformed("MARKER must be 1 to 64 printable ASCII characters")
    report = report_descriptor()
    steps = {}
    try:
        result = run(user, outdir, int(seconds), keysyms, marker, steps)
        code = 0
    except Failure as failure:
        result = {"ok": False, "step": failure.step, "detail": failure.detail, "steps": steps}
        code = 1
    except OSError as error:
        result = {"ok": False, "step": "pictures", "detail": f"{error.strerror}: {error.filename}", "steps": steps}
        code = 1
    print(json.dumps(result), file=report, flush=True)
    sys.exit(code)


main()
