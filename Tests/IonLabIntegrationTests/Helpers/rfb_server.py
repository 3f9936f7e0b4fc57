#!/usr/bin/env python3
"""A small VNC (RFB 3.8) server for the remote-desktop probe's tests, independent of ionlab.

  rfb_server.py PORT [--blank]

Serves a 64 x 48 desktop named "scripted" on 127.0.0.1:PORT with no authentication, in 32-bit true colour
(it checks that the client asks for that) and the Raw encoding. The screen is a gradient (with --blank, one colour
and a single white pixel, like a cursor on a desktop that drew nothing: two colours, but blank); each key pressed paints a band of it white, so a viewer's input visibly changes the screen. Answers an
incremental update request only once something changed, as real servers do.
"""
import socket
import struct
import sys
import threading

W, H = 64, 48


def serve(connection, blank):
    pixels = bytearray()
    for y in range(H):
        for x in range(W):
            b, g, r = ((255, 255, 255) if (x, y) == (W // 2, H // 2) else (40, 40, 40)) if blank else (x * 4, y * 5, (x + y) * 2)
            pixels += bytes((b, g, r, 0))
    state = {"dirty": True, "pending": False, "band": 0}

    def read(n):
        data = b""
        while len(data) < n:
            chunk = connection.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def frame():
        header = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", 0, 0, W, H, 0)
        connection.sendall(header + bytes(pixels))
        state["dirty"] = False
        state["pending"] = False

    connection.sendall(b"RFB 003.008\n")
    if read(12) != b"RFB 003.008\n":
        return
    connection.sendall(bytes((1, 1)))  # one security type: None
    if read(1) != b"\x01":
        return
    connection.sendall(struct.pack(">I", 0))
    read(1)  # ClientInit
    name = b"scripted"
    pixel_format = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    connection.sendall(struct.pack(">HH", W, H) + pixel_format + struct.pack(">I", len(name)) + name)
    while True:
        kind = read(1)[0]
        if kind == 0:  # SetPixelFormat
            fmt = read(19)[3:]
            bpp, depth, big, true_colour, rmax, gmax, bmax, rshift, gshift, bshift = struct.unpack(">BBBBHHHBBB", fmt[:13])
            if (bpp, true_colour, big, rshift, gshift, bshift) != (32, 1, 0, 16, 8, 0):
                return  # a format this server does not speak
        elif kind == 2:  # SetEncodings
            count = struct.unpack(">xH", read(3))[0]
            read(4 * count)
        elif kind == 3:  # FramebufferUpdateRequest
            incremental = read(9)[0]
            if not incremental or state["dirty"]:
                frame()
            else:
                state["pending"] = True
        elif kind == 4:  # KeyEvent
            down = read(7)[0]
            if down:
                band = state["band"] % (H // 4)
                for y in range(band * 4, band * 4 + 4):
                    for x in range(W):
                        pixels[(y * W + x) * 4:(y * W + x) * 4 + 3] = b"\xff\xff\xff"
                state["band"] += 1
                state["dirty"] = True
                if state["pending"]:
                    frame()
        elif kind == 5:  # PointerEvent
            read(5)
        elif kind == 6:  # ClientCutText
            length = struct.unpack(">xxxI", read(7))[0]
            read(length)
        else:
            return


def main():
    port = int(sys.argv[1])
    blank = "--blank" in sys.argv
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(8)
    while True:
        connection, _ = server.accept()

        def run(c=connection):
            try:
                serve(c, blank)
            except (EOFError, OSError):
                pass
            finally:
                c.close()
        threading.Thread(target=run, daemon=True).start()


main()
