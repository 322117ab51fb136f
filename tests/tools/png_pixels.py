#!/usr/bin/env python3
"""Counts the pixels of one colour in a PNG (8-bit RGB/RGBA, non-interlaced),
with the standard library only, and checks the count against a bound.

Usage: png_pixels.py FILE R,G,B (--at-least N | --at-most N)
"""
import struct
import sys
import zlib


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"png_pixels: {path} is not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    if depth != 8 or color not in (2, 6) or interlace != 0:
        sys.exit(f"png_pixels: {path}: unsupported PNG (depth {depth}, colour type {color})")
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        kind = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def main():
    if len(sys.argv) != 5 or sys.argv[3] not in ("--at-least", "--at-most"):
        sys.exit(__doc__)
    path, colour, bound, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    want = tuple(int(v) for v in colour.split(","))
    width, height, channels, rows = read_png(path)
    count = 0
    for row in rows:
        for x in range(0, width * channels, channels):
            if all(abs(row[x + k] - want[k]) <= 2 for k in range(3)):
                count += 1
    ok = count >= limit if bound == "--at-least" else count <= limit
    print(f"png_pixels: {path} ({width}x{height}): {count} pixel(s) of rgb{want}, "
          f"expected {bound[2:].replace('-', ' ')} {limit}: {'ok' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
