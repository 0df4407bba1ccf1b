"""gfdit_client.png without a server: round trips, every filter type, hostile input, grid."""

import base64
import hashlib
import os
import struct
import sys
import unittest
import zlib

# Runs from a checkout without `pip install` (unittest discover puts only tests/ on sys.path).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gfdit_client.png import grid, read_png, write_png  # noqa: E402


def chunk(ctype, body):
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def ihdr(width, height, color_type=0, depth=8, interlace=0):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, interlace))


def png_from_scanlines(width, height, color_type, scanlines, extra=b""):
    """A PNG from raw scanlines (each: filter byte + filtered samples), built here by hand."""
    return (b"\x89PNG\r\n\x1a\n" + ihdr(width, height, color_type) + extra
            + chunk(b"IDAT", zlib.compress(b"".join(scanlines))) + chunk(b"IEND", b""))


def filter_row(ftype, row, prev, bpp):
    """Reference PNG filter (spec section 9), independent of the decoder under test."""
    out = bytearray([ftype])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if ftype == 0:
            pred = 0
        elif ftype == 1:
            pred = a
        elif ftype == 2:
            pred = b
        elif ftype == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out.append((x - pred) % 256)
    return bytes(out)


def pattern(width, height, channels):
    return bytes((x * 37 + y * 91 + c * 53 + x * y * 13) % 256
                 for y in range(height) for x in range(width) for c in range(channels))


# Made by ImageMagick 6 (libpng's adaptive filtering) from known pixels; their rows use all five
# filter types: grey rows 1,0,1,3,1,3,3,1,4,4,0,2,2,1,3,1,2,2,1,4,0,1,3,2 and RGB rows
# 1,2,4,2,2,0,2,1,3,3,0,0,1,3,3,3,3,1,2,2,1,4,1,2. Decoding them checks against another encoder.
IM_GREY_16x24 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAYCAAAAADWyyLQAAABMElEQVQY012QPyiEcRjHv9/nVejtynu/3+9iulInl3LnLouL"
    "W5RB/g0WoSuLOskiVsmGksFkUJYzqBts2PzJHZsknWJgMjh3xPIa3kvunu15+n6+fXpIlwAAF3RBlwhl3uNHj3uzpee1YH0k"
    "D7ba1WMRHkKABMmD047RwZ3CfcuVuNnF+aj19rV/uHvxVB4vLkxEN5rvLFbiYAVdqimtc/5vTvXBsW3bhi+Z6r3sPEn47Znp"
    "ZDkdlHwp9JL5LCxfjx1v3fZNDQiFAhFAAArBQq06QJL0VECQ2iijjNb+gNJGGXGHVnS7Lx2PTVrfbcO5oggoFPFIEIzVqjed"
    "nTfkU3PbP12Rh3B3+QYfubC9/ppY7c/2jGw2Gk1RRmnjD2itldHKWN7r/johgJAUEBSA+AX5M0sp/9jWiQAAAABJRU5ErkJg"
    "gg==")
IM_GREY_SHA256 = "de1914e73ab9655be8bdcc4d3da256bbdf326bc4f49e27c36cecbb483094a25f"
IM_RGB_16x24 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAYCAIAAAB8wupbAAAC2klEQVQ4y5VTaUhUURT+vjOa4UA5792Z1BbTwtA2SIqwiFQC"
    "w8xWISJpIcoWWrGwIlqIEMTSMlRI0pTGKSkogzKjMvvTZmkrFZEZJDQtZCOprx/vzat+ei+cc+45955zz8d3SBAEYBgAABoA"
    "g9owDCuIoBsiFAgFIkJCSAEBQIQExDSFIhRAhCEx8QnOgSwhRYSggCIEIISAIAEIICIiAAQiICj+D1MnO28kvb9X+nna05H3"
    "U5bm/2rYX9OU1RWatPH+88LGBu3tyeT67NlRHQHHtSPJkfANK5qT33255Gra6Za2BKz2Lczf/vFWW8SDZ8OWdIw+vKCjB3pf"
    "baU/qm1lYmrYg/ZgNQEgAlIQFCBERAgLBZqI7Np7YEBNO0jC7JAkYeYzLdsm7SgdYLCmHcbfbT834yTQk/HoRV+NYazbGlJf"
    "dVbLOJR1u/Rr7HgVuyNVlYV99C6a19V0xzVp3KvcE+3dLbvCsaL8YF1s75GKx83NMYtT8ot9I7Tu9vTfCZmXn2hf7n6OTPqW"
    "GR6RVjP10prm39NH+c/zVEqL0Ve+r+CQr2xQ4O7EnCebevJ+xOWOc+6Ydfr98t6ffZj8JqKwZXxc6/bEIdUeh2NtcWB1f05k"
    "XcUxvfRcVjEvehfnvb7QGu07fn1CUfWjKe66hpe9D2f+LLs5I72zd3q8AxYNSQQBs0yzV9tlKYdFG5o6eLDQMuH5TzksmO0a"
    "trALIwiwmfdtl7dzI/SjVUM2Z6+IaTqTvv7XXJTmRgWudHpz1s5P+95zY09b9IjaZevC+9/VOneKmR0UANYsERQISCEJAQgI"
    "AVqTRJNsJuusH8FOQ+E/HBByybKcAZEvxOVyDeS+izJ4qHIrpZSu6brHozTlVpryeHSlPLqmKY9bV263ptwepXRN6VJRud77"
    "YstE9+MNu29/3+bvbmz9uv9TV/3rsc6SuXsy/ImuW2MOrwoNlA/fOuF8ct7Kgj8+pt9ljYMCVQAAAABJRU5ErkJggg==")
IM_RGB_SHA256 = "0b6d0ccf6df61a43581867d489dae09371cfbfc74c6dc4ffa23c097f6e8f5beb"


class RoundTrip(unittest.TestCase):
    def test_grey_and_rgb(self):
        for w, h, c in ((1, 1, 1), (28, 28, 1), (5, 3, 3), (1, 7, 3), (64, 2, 1)):
            px = pattern(w, h, c)
            data = write_png(w, h, c, px)
            self.assertEqual(read_png(data), (w, h, c, px), (w, h, c))

    def test_extremes(self):
        for px in (bytes(12), b"\xff" * 12):
            self.assertEqual(read_png(write_png(2, 2, 3, px)), (2, 2, 3, px))

    def test_write_is_deterministic(self):
        px = pattern(9, 4, 1)
        self.assertEqual(write_png(9, 4, 1, px), write_png(9, 4, 1, bytearray(px)))

    def test_write_rejects_bad_arguments(self):
        with self.assertRaises(ValueError):
            write_png(2, 2, 1, bytes(3))
        with self.assertRaises(ValueError):
            write_png(2, 2, 4, bytes(16))
        with self.assertRaises(ValueError):
            write_png(0, 2, 1, b"")


class Filters(unittest.TestCase):
    ROW0 = bytes([10, 50, 50, 48])  # grey, 4 wide, sent with filter 0

    def decode_row1(self, ftype, filtered):
        data = png_from_scanlines(4, 2, 0, [b"\x00" + self.ROW0, bytes([ftype]) + bytes(filtered)])
        w, h, c, px = read_png(data)
        self.assertEqual((w, h, c), (4, 2, 1))
        self.assertEqual(px[:4], self.ROW0)
        return list(px[4:])

    # Expected values worked out by hand from the PNG spec, section 9.
    def test_none(self):
        self.assertEqual(self.decode_row1(0, [1, 2, 3, 4]), [1, 2, 3, 4])

    def test_sub(self):
        self.assertEqual(self.decode_row1(1, [5, 5, 250, 10]), [5, 10, 4, 14])

    def test_up(self):
        self.assertEqual(self.decode_row1(2, [1, 2, 250, 255]), [11, 52, 44, 47])

    def test_average(self):
        # (left + up) >> 1 with a 9-bit sum: 6 = 1+(0+10)/2, 30 = 2+(6+50)/2, 43, 49
        self.assertEqual(self.decode_row1(3, [1, 2, 3, 4]), [6, 30, 43, 49])

    def test_paeth_picks_up_left_and_upleft(self):
        # x0, x1 predict from up (b), x2 from left (a: up == up-left), x3 from up-left (c).
        self.assertEqual(self.decode_row1(4, [20, 1, 1, 7]), [30, 51, 52, 57])

    def test_paeth_ties(self):
        # The spec's order breaks ties: b over c (left 25, up 10, up-left 20: p = 15, |p-b| =
        # |p-c| = 5) and a over c (left 10, up 25, up-left 20). Ties of a with b need a == b.
        for row0, row1_raw, expect in (([20, 10], [5, 0], [25, 10]),
                                       ([20, 25], [246, 0], [10, 10])):
            data = png_from_scanlines(2, 2, 0, [bytes([0] + row0), bytes([4] + row1_raw)])
            self.assertEqual(list(read_png(data)[3][2:]), expect, row0)

    def test_first_row_sees_zeros_above(self):
        for ftype, expect in ((2, [4, 6]), (3, [4, 8]), (4, [4, 10])):
            data = png_from_scanlines(2, 1, 0, [bytes([ftype, 4, 6])])
            self.assertEqual(list(read_png(data)[3]), expect, ftype)

    def test_rgb_sub_uses_the_pixel_to_the_left(self):
        data = png_from_scanlines(2, 1, 2, [bytes([1, 1, 2, 3, 10, 20, 30])])
        self.assertEqual(list(read_png(data)[3]), [1, 2, 3, 11, 22, 33])

    def test_every_filter_every_row_against_reference(self):
        for channels, color_type in ((1, 0), (3, 2)):
            w, h = 7, 5
            px = pattern(w, h, channels)
            stride = w * channels
            rows = [px[y * stride:(y + 1) * stride] for y in range(h)]
            plans = [[f] * h for f in range(5)] + [[(y * 3 + 1) % 5 for y in range(h)]]
            for plan in plans:
                prev, lines = bytes(stride), []
                for f, row in zip(plan, rows):
                    lines.append(filter_row(f, row, prev, channels))
                    prev = row
                data = png_from_scanlines(w, h, color_type, lines)
                self.assertEqual(read_png(data), (w, h, channels, px), (channels, plan))

    def test_imagemagick_files(self):
        for data, channels, digest in ((IM_GREY_16x24, 1, IM_GREY_SHA256),
                                        (IM_RGB_16x24, 3, IM_RGB_SHA256)):
            w, h, c, px = read_png(data)
            self.assertEqual((w, h, c), (16, 24, channels))
            self.assertEqual(hashlib.sha256(px).hexdigest(), digest)


class Malformed(unittest.TestCase):
    def setUp(self):
        self.good = write_png(5, 4, 3, pattern(5, 4, 3))

    def rejects(self, data, words):
        with self.assertRaises(ValueError) as cm:
            read_png(data)
        self.assertIn(words, str(cm.exception).lower())

    def test_not_a_png(self):
        self.rejects(b"", "signature")
        self.rejects(b"GIF89a" + bytes(40), "signature")

    def test_every_truncation(self):
        for cut in range(len(self.good)):
            with self.assertRaises(ValueError, msg="cut at %d" % cut):
                read_png(self.good[:cut])

    def test_bad_crc(self):
        for where in (20, 40, len(self.good) - 2):  # IHDR body, IDAT body, IEND's CRC
            data = bytearray(self.good)
            data[where] ^= 0x01
            self.rejects(bytes(data), "crc")

    def test_unsupported_formats(self):
        def with_header(**kw):
            return b"\x89PNG\r\n\x1a\n" + ihdr(2, 2, **kw) + chunk(b"IDAT", zlib.compress(bytes(6))) + chunk(b"IEND", b"")
        self.rejects(with_header(color_type=3), "color type 3")
        self.rejects(with_header(color_type=4), "color type 4")
        self.rejects(with_header(color_type=6), "color type 6")
        self.rejects(with_header(depth=16), "bit depth 16")
        self.rejects(with_header(depth=1), "bit depth 1")
        self.rejects(with_header(interlace=1), "interlaced")

    def test_unknown_filter_type(self):
        self.rejects(png_from_scanlines(2, 1, 0, [bytes([5, 1, 2])]), "filter type 5")

    def test_image_data_size(self):
        self.rejects(png_from_scanlines(3, 2, 0, [bytes([0, 1, 2, 3])]), "truncated")
        self.rejects(png_from_scanlines(2, 1, 0, [bytes([0, 1, 2, 3])]), "longer")

    def test_corrupt_zlib(self):
        data = (b"\x89PNG\r\n\x1a\n" + ihdr(2, 2) + chunk(b"IDAT", b"not zlib at all")
                + chunk(b"IEND", b""))
        self.rejects(data, "corrupt")

    def test_structure(self):
        sig, rest = self.good[:8], self.good[8:]
        ihdr_len = 25
        self.rejects(sig + rest[ihdr_len:], "ihdr")  # IHDR missing
        self.rejects(self.good + b"junk", "garbage")
        self.rejects(sig + rest[:ihdr_len] + chunk(b"IEND", b""), "idat")
        self.rejects(sig + rest[:ihdr_len] + chunk(b"ABCD", b"x") + rest[ihdr_len:], "critical")
        self.rejects(sig + chunk(b"IHDR", bytes(12)) + rest[ihdr_len:], "13")
        self.rejects(sig + ihdr(0, 3) + rest[ihdr_len:], "size")

    def test_ancillary_chunks_are_skipped(self):
        sig, rest = self.good[:8], self.good[8:]
        data = sig + rest[:25] + chunk(b"tEXt", b"Comment\x00hi") + rest[25:]
        self.assertEqual(read_png(data), read_png(self.good))


class Grid(unittest.TestCase):
    def test_layout_and_scale(self):
        tiles = [(2, 1, 1, bytes([k * 10 + 1, k * 10 + 2])) for k in range(3)]
        w, h, c, px = grid(tiles, cols=2, scale=2)
        self.assertEqual((w, h, c), (8, 4, 1))
        row_a = [1, 1, 2, 2, 11, 11, 12, 12]
        row_b = [21, 21, 22, 22, 0, 0, 0, 0]  # the missing 4th tile stays black
        self.assertEqual(list(px), row_a + row_a + row_b + row_b)

    def test_grey_promoted_when_mixed_with_rgb(self):
        w, h, c, px = grid([(1, 1, 1, b"\x07"), (1, 1, 3, b"\x01\x02\x03")], cols=2)
        self.assertEqual((w, h, c, list(px)), (2, 1, 3, [7, 7, 7, 1, 2, 3]))

    def test_rgb_scale_repeats_whole_pixels(self):
        w, h, c, px = grid([(1, 1, 3, b"\x01\x02\x03")], cols=1, scale=3)
        self.assertEqual((w, h, c), (3, 3, 3))
        self.assertEqual(px, b"\x01\x02\x03" * 9)

    def test_result_encodes(self):
        sheet = grid([(28, 28, 1, pattern(28, 28, 1))] * 10, cols=1, scale=4)
        self.assertEqual(sheet[:3], (112, 1120, 1))
        self.assertEqual(read_png(write_png(*sheet)), sheet)

    def test_rejects(self):
        with self.assertRaises(ValueError):
            grid([], cols=1)
        with self.assertRaises(ValueError):
            grid([(1, 1, 1, b"\x00"), (2, 1, 1, b"\x00\x00")], cols=2)
        with self.assertRaises(ValueError):
            grid([(1, 1, 1, b"\x00")], cols=0)
        with self.assertRaises(ValueError):
            grid([(1, 1, 1, b"\x00")], cols=1, scale=0)
        with self.assertRaises(ValueError):
            grid([(1, 1, 1, b"\x00\x00")], cols=1)


if __name__ == "__main__":
    unittest.main()
