#!/usr/bin/env python3
"""A scripted xdg-desktop-portal frontend on a private session bus, for the portal-session probe's tests: it
owns org.freedesktop.portal.Desktop and answers as the real frontend does (each request a Request object whose
Response signal carries the result), but what it answers is chosen here, independent of ionlab.

  scripted_portal.py --address-file FILE [--no-portal | --no-screencast | --start-response N]

It starts its own dbus-daemon (a session bus), writes the bus's address into FILE once it owns its name, and
serves until killed. --no-portal: the bus only, nothing owns the portal's name (xdg-desktop-portal not
running). --no-screencast: the frontend found no ScreenCast backend, so it exports no ScreenCast (a
backend that is not running). --start-response N: ScreenCast.Start answers N (1: cancelled, as a backend whose
chooser nobody answers; 2: ended by the backend), a backend that is not configured.
"""
import argparse
import ctypes
import os
import signal
import subprocess
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

PR_SET_PDEATHSIG = 1  # prctl(2)

PATH = "/org/freedesktop/portal/desktop"


class Request(dbus.service.Object):
    def __init__(self, bus, path):
        super().__init__(bus, path)

    @dbus.service.signal("org.freedesktop.portal.Request", signature="ua{sv}")
    def Response(self, code, results):
        pass


class Portal(dbus.service.Object):
    def __init__(self, bus, screencast, start_response):
        super().__init__(bus, PATH)
        self.bus, self.screencast, self.start_response = bus, screencast, start_response
        self.serial = 0

    def answer(self, sender, options, code, results):
        token = str(options.get("handle_token", "t%d" % self.serial))
        self.serial += 1
        path = f"{PATH}/request/{sender[1:].replace('.', '_')}/{token}"
        request = Request(self.bus, path)
        GLib.timeout_add(50, lambda: request.Response(dbus.UInt32(code), dbus.Dictionary(results, signature="sv")) and False)
        return dbus.ObjectPath(path)

    def require_screencast(self):
        if not self.screencast:
            raise dbus.exceptions.DBusException("No such interface “org.freedesktop.portal.ScreenCast”",
                                                name="org.freedesktop.DBus.Error.UnknownMethod")

    @dbus.service.method("org.freedesktop.DBus.Properties", in_signature="ss", out_signature="v")
    def Get(self, interface, name):
        if interface != "org.freedesktop.portal.ScreenCast" or not self.screencast:
            raise dbus.exceptions.DBusException(f"No such interface “{interface}”", name="org.freedesktop.DBus.Error.InvalidArgs")
        return dbus.UInt32({"AvailableCursorModes": 3, "AvailableSourceTypes": 1}.get(name, 4))

    @dbus.service.method("org.freedesktop.portal.ScreenCast", in_signature="a{sv}", out_signature="o", sender_keyword="sender")
    def CreateSession(self, options, sender=None):
        self.require_screencast()
        session = f"{PATH}/session/{sender[1:].replace('.', '_')}/{options['session_handle_token']}"
        return self.answer(sender, options, 0, {"session_handle": dbus.String(session)})

    @dbus.service.method("org.freedesktop.portal.ScreenCast", in_signature="oa{sv}", out_signature="o", sender_keyword="sender")
    def SelectSources(self, session, options, sender=None):
        self.require_screencast()
        return self.answer(sender, options, 0, {})

    @dbus.service.method("org.freedesktop.portal.ScreenCast", in_signature="osa{sv}", out_signature="o", sender_keyword="sender")
    def Start(self, session, parent, options, sender=None):
        self.require_screencast()
        if self.start_response:
            return self.answer(sender, options, self.start_response, {})
        return self.answer(sender, options, 0, {"streams": dbus.Array([(dbus.UInt32(42), dbus.Dictionary({}, signature="sv"))],
                                                                        signature="(ua{sv})")})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address-file", required=True)
    parser.add_argument("--no-portal", action="store_true")
    parser.add_argument("--no-screencast", action="store_true")
    parser.add_argument("--start-response", type=int, default=0)
    arguments = parser.parse_args()
    # The bus dies with this script even when the test's lab ends it with SIGKILL.
    libc = ctypes.CDLL(None, use_errno=True)
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"], stdout=subprocess.PIPE, text=True,
                              preexec_fn=lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL))
    address = daemon.stdout.readline().strip()
    signal.signal(signal.SIGTERM, lambda *_: (daemon.kill(), sys.exit(0)))
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    if not arguments.no_portal:
        name = dbus.service.BusName("org.freedesktop.portal.Desktop", bus)
        Portal(bus, not arguments.no_screencast, arguments.start_response)
    with open(arguments.address_file + ".new", "w") as file:
        file.write(address)
    os.rename(arguments.address_file + ".new", arguments.address_file)
    try:
        GLib.MainLoop().run()
    finally:
        daemon.kill()


main()
