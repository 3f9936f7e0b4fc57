#!/usr/bin/env python3
"""Reads PNGs with nothing but the standard library, independently of the encoder that wrote them.

  png_check.py FILE         prints {"width", "height", "colors", "variance"} as JSON: colors counts the distinct
                            pixel values (up to 1000), variance is the variance of the pixels' brightness (BT.601
                            luma, 0-255, rounded): 0 for a screen of one colour, about 2 for a cursor on one
  png_check.py FILE OTHER   also prints "changed", the per-mille of pixels that differ between the two (which
                            must be of one size)
Exits 1, naming the problem, if a file is not a valid 8-bit RGB, RGBA or grey PNG (signature, chunk CRCs, IHDR,
zlib stream, row filters).
"""
import json
import struct
import sys
import zlib


def fail(path, message):
    print(f"png_check: {path}: {message}", file=sys.stderr)
    sys.exit(1)


def chunks(path, data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(path, "no PNG signature")
    offset = 8
    while offset < len(data):
        if offset + 8 > len(data):
            fail(path, "a chunk is cut short")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        crc = data[offset + 8 + length:offset + 12 + length]
        if len(body) != length or len(crc) != 4:
            fail(path, f"chunk {kind!r} is cut short")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            fail(path, f"chunk {kind!r} has a bad CRC")
        yield kind, body
        offset += 12 + length


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def pixels(path):
    """The image's width, height and rows, each row the bytes of its pixels as red, green, blue."""
    data = open(path, "rb").read()
    header, compressed, ended = None, b"", False
    for kind, body in chunks(path, data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            ended = True
    if header is None or not ended:
        fail(path, "no IHDR or no IEND")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        fail(path, f"depth {depth}, colour type {color}, interlace {interlace}: not read here")
    try:
        raw = zlib.decompress(compressed)
    except zlib.error as error:
        fail(path, f"the image data is not a zlib stream: {error}")
    stride = width * channels
    if len(raw) != height * (stride + 1):
        fail(path, f"{len(raw)} bytes of rows for {width} x {height}")
    previous = bytearray(stride)
    rows = []
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
                fail(path, f"row {row} has filter {kind}")
        if channels == 1:
            rows.append(bytes(v for v in line for _ in range(3)))
        elif channels == 4:
            rows.append(bytes(v for i, v in enumerate(line) if i % 4 != 3))
        else:
            rows.append(bytes(line))
        previous = line
    return width, height, rows


def main():
    width, height, rows = pixels(sys.argv[1])
    colors = set()
    total = squares = 0.0
    for row in rows:
        if len(colors) < 1000:
            colors.update(row[i:i + 3] for i in range(0, len(row), 3))
        for i in range(0, len(row), 3):
            luma = (299 * row[i] + 587 * row[i + 1] + 114 * row[i + 2]) / 1000
            total += luma
            squares += luma * luma
    count = max(1, width * height)
    report = {"width": width, "height": height, "colors": min(len(colors), 1000),
              "variance": round(max(0.0, squares / count - (total / count) ** 2))}
    if len(sys.argv) > 2:
        other_width, other_height, other_rows = pixels(sys.argv[2])
        if (other_width, other_height) != (width, height):
            fail(sys.argv[2], f"{other_width} x {other_height}, not {width} x {height} like {sys.argv[1]}")
        differing = sum(row[i:i + 3] != other[i:i + 3] for row, other in zip(rows, other_rows) if row != other
                        for i in range(0, len(row), 3))
        report["changed"] = round(1000 * differing / count)
    print(json.dumps(report))


main()
