#!/usr/bin/env python3
"""Reads a PNG with nothing but the standard library, independently of the encoder that wrote it.

  png_check.py FILE   prints {"width", "height", "colors"} as JSON, where colors counts the distinct pixel
                      values (1 means a blank screen); exits 1, naming the problem, if FILE is not a valid
                      8-bit RGB, RGBA or grey PNG (signature, chunk CRCs, IHDR, zlib stream, row filters).
"""
import json
import struct
import sys
import zlib


def fail(message):
    print(f"png_check: {sys.argv[1]}: {message}", file=sys.stderr)
    sys.exit(1)


def chunks(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("no PNG signature")
    offset = 8
    while offset < len(data):
        if offset + 8 > len(data):
            fail("a chunk is cut short")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        crc = data[offset + 8 + length:offset + 12 + length]
        if len(body) != length or len(crc) != 4:
            fail(f"chunk {kind!r} is cut short")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            fail(f"chunk {kind!r} has a bad CRC")
        yield kind, body
        offset += 12 + length


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def main():
    data = open(sys.argv[1], "rb").read()
    header, compressed, ended = None, b"", False
    for kind, body in chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            ended = True
    if header is None or not ended:
        fail("no IHDR or no IEND")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        fail(f"depth {depth}, colour type {color}, interlace {interlace}: not read here")
    raw = zlib.decompress(compressed)
    stride = width * channels
    if len(raw) != height * (stride + 1):
        fail(f"{len(raw)} bytes of rows for {width} x {height}")
    previous = bytearray(stride)
    colors = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + paeth(left, up, corner)) & 0xFF
            elif kind != 0:
                fail(f"row {row} has filter {kind}")
        if len(colors) < 1000:
            colors.update(bytes(line[i:i + channels]) for i in range(0, stride, channels))
        previous = line
    print(json.dumps({"width": width, "height": height, "colors": len(colors)}))


main()
