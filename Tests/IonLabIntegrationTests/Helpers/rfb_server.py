#!/usr/bin/env python3
"""A small VNC (RFB 3.8) server for the remote-desktop probe's tests, independent of ionlab.

  rfb_server.py PORT [--blank | --garbled]

Serves a 480 x 120 desktop named "scripted" on 127.0.0.1:PORT with no authentication, in 32-bit true colour
(it checks that the client asks for that) and the Raw encoding. Its screen is a terminal of sorts: printable
keys are typed on its line, Return starts the next line, each drawn with Pillow in DejaVu Sans Mono, so OCR can
read what a viewer typed. With --blank it is one colour and a single white pixel, like a cursor on a desktop that
drew nothing (two colours, but blank); with --garbled each key paints a band of the screen and the text
"Segmentation fault" appears, so the input changes the screen but what was typed is not on it. Answers an
incremental update request only once something changed, as real servers do.
"""
import socket
import struct
import sys
import threading

from PIL import Image, ImageDraw, ImageFont

W, H = 480, 120
FONT = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", 16)


class Screen:
    """The picture the server shows, as BGRX bytes."""

    def __init__(self, mode):
        self.mode = mode
        self.lines = ["terminal ready", "$ "]
        self.bands = 0
        self.pixels = self.render()

    def render(self):
        if self.mode == "blank":
            image = Image.new("RGB", (W, H), (40, 40, 40))
            image.putpixel((W // 2, H // 2), (255, 255, 255))
        elif self.mode == "garbled":
            image = Image.new("RGB", (W, H), (200, 200, 200))
            draw = ImageDraw.Draw(image)
            draw.rectangle((0, 0, W, 21), fill=(30, 60, 110))
            draw.text((8, 2), "scripted desktop", font=FONT, fill=(255, 255, 255))
            for band in range(self.bands):
                top = 26 + (band * 6) % (H - 72)
                draw.rectangle((0, top, W, top + 3), fill=(20, 20, 20))
            if self.bands:
                draw.text((10, H - 26), "Segmentation fault", font=FONT, fill=(20, 20, 20))
        else:
            image = Image.new("RGB", (W, H), (250, 250, 250))
            draw = ImageDraw.Draw(image)
            draw.rectangle((0, 0, W, 21), fill=(30, 60, 110))
            draw.text((8, 2), "scripted terminal", font=FONT, fill=(255, 255, 255))
            for number, line in enumerate(self.lines[-4:]):
                draw.text((8, 26 + number * 22), line, font=FONT, fill=(10, 10, 10))
        r, g, b = image.split()
        return bytearray(Image.merge("RGBA", (b, g, r, Image.new("L", (W, H), 0))).tobytes())

    def key(self, keysym):
        if self.mode == "garbled":
            self.bands += 1
        elif self.mode == "terminal":
            if keysym == 0xFF0D:
                typed = self.lines[-1][2:]
                if typed.startswith("echo "):
                    self.lines.append(typed[5:])
                self.lines.append("$ ")
            elif 0x20 <= keysym < 0x7F:
                self.lines[-1] += chr(keysym)
            else:
                return
        self.pixels = self.render()


def serve(connection, mode):
    screen = Screen(mode)
    state = {"dirty": True, "pending": False}

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
        connection.sendall(header + bytes(screen.pixels))
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
            down, keysym = struct.unpack(">BxxI", read(7))
            if down:
                screen.key(keysym)
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
    mode = "blank" if "--blank" in sys.argv else "garbled" if "--garbled" in sys.argv else "terminal"
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(8)
    while True:
        connection, _ = server.accept()

        def run(c=connection):
            try:
                serve(c, mode)
            except (EOFError, OSError):
                pass
            finally:
                c.close()
        threading.Thread(target=run, daemon=True).start()


main()
