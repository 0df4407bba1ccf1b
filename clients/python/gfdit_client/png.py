"""Stdlib-only PNG helpers: enough to check, save and tile what gfdit serves.

An image is a tuple ``(width, height, channels, pixels)``: 8-bit samples, ``channels`` 1 (grey)
or 3 (RGB), ``pixels`` row-major with no padding, ``width * height * channels`` bytes long.
"""

import struct
import zlib

__all__ = ["read_png", "write_png", "grid"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS_BY_COLOR_TYPE = {0: 1, 2: 3}
_COLOR_TYPE_BY_CHANNELS = {1: 0, 3: 2}
_COLOR_TYPE_NAMES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}
# PNG's own limit on dimensions; also keeps a hostile header from asking for terabytes.
_MAX_DIMENSION = 2 ** 31 - 1


def _paeth(a, b, c):
    p = a + b - c
    pa = abs(p - a)
    pb = abs(p - b)
    pc = abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


def _unfilter(raw, width, height, bpp):
    stride = width * bpp
    out = bytearray(stride * height)
    prev = bytearray(stride)  # the row above the first is all zeros (PNG spec 9.2)
    pos = 0
    for y in range(height):
        ftype = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if ftype == 0:
            pass
        elif ftype == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                if i >= bpp:
                    left, upleft = line[i - bpp], prev[i - bpp]
                else:
                    left = upleft = 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        else:
            raise ValueError("PNG row %d has unknown filter type %d" % (y, ftype))
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return bytes(out)


def read_png(data):
    """Decodes an 8-bit, non-interlaced greyscale or RGB PNG.

    Returns ``(width, height, channels, pixels)``. Raises ValueError on anything else, on a bad
    CRC and on truncated or trailing-garbage data, so a test can trust what it got.
    """
    data = bytes(data)
    if len(data) < len(SIGNATURE) or data[:8] != SIGNATURE:
        raise ValueError("not a PNG: the 8-byte signature is missing")
    pos = 8
    header = None
    idat = []
    seen_iend = False
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG: chunk header cut at byte %d" % pos)
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        if length > 2 ** 31 - 1:
            raise ValueError("PNG chunk %r claims %d bytes (over 2^31-1)" % (ctype, length))
        end = pos + 8 + length + 4
        if end > len(data):
            raise ValueError("truncated PNG: chunk %r needs %d bytes, %d left"
                             % (ctype, length + 12, len(data) - pos))
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise ValueError("bad CRC in PNG chunk %r at byte %d" % (ctype, pos))
        pos = end
        if header is None and ctype != b"IHDR":
            raise ValueError("PNG does not start with IHDR (first chunk is %r)" % ctype)
        if ctype == b"IHDR":
            if header is not None:
                raise ValueError("PNG has two IHDR chunks")
            if length != 13:
                raise ValueError("PNG IHDR is %d bytes, not 13" % length)
            header = struct.unpack(">IIBBBBB", body)
            width, height, depth, color_type, compression, filter_method, interlace = header
            if not (0 < width <= _MAX_DIMENSION and 0 < height <= _MAX_DIMENSION):
                raise ValueError("PNG size %dx%d is not allowed" % (width, height))
            if color_type not in _CHANNELS_BY_COLOR_TYPE:
                raise ValueError("unsupported PNG color type %d (%s): only greyscale (0) and RGB (2)"
                                 % (color_type, _COLOR_TYPE_NAMES.get(color_type, "invalid")))
            if depth != 8:
                raise ValueError("unsupported PNG bit depth %d: only 8" % depth)
            if compression != 0 or filter_method != 0:
                raise ValueError("unknown PNG compression (%d) or filter method (%d)"
                                 % (compression, filter_method))
            if interlace != 0:
                raise ValueError("interlaced PNG (Adam7) is not supported")
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            seen_iend = True
            break
        elif ctype == b"PLTE":
            pass  # allowed in an RGB image as a suggested palette; the pixels don't use it
        elif not (ctype[0] & 0x20):
            # Bit 5 of the first letter clear = critical: a decoder must not guess past it.
            raise ValueError("unknown critical PNG chunk %r" % ctype)
    if header is None:
        raise ValueError("truncated PNG: no IHDR")
    if not seen_iend:
        raise ValueError("truncated PNG: no IEND chunk")
    if pos != len(data):
        raise ValueError("%d bytes of garbage after the PNG's IEND" % (len(data) - pos))
    if not idat:
        raise ValueError("PNG has no IDAT chunk")
    width, height, _, color_type = header[:4]
    channels = _CHANNELS_BY_COLOR_TYPE[color_type]
    expected = height * (1 + width * channels)
    decomp = zlib.decompressobj()
    try:
        # Capped at one byte more than expected, so a zip bomb can't blow up memory.
        raw = decomp.decompress(b"".join(idat), expected + 1)
    except zlib.error as e:
        raise ValueError("corrupt PNG image data: %s" % e)
    if len(raw) < expected:
        raise ValueError("truncated PNG image data: %d bytes, %d needed" % (len(raw), expected))
    if len(raw) > expected or decomp.unconsumed_tail:
        raise ValueError("PNG image data is longer than %dx%d needs" % (width, height))
    if not decomp.eof:
        raise ValueError("truncated PNG image data: the zlib stream does not end")
    return width, height, channels, _unfilter(raw, width, height, channels)


def _chunk(ctype, body):
    return (struct.pack(">I", len(body)) + ctype + body
            + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF))


def write_png(width, height, channels, pixels):
    """Encodes 8-bit greyscale (channels=1) or RGB (channels=3) pixels as PNG bytes."""
    if channels not in _COLOR_TYPE_BY_CHANNELS:
        raise ValueError("channels must be 1 (grey) or 3 (RGB), not %r" % (channels,))
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError("width and height must be positive ints, not %r x %r" % (width, height))
    pixels = bytes(pixels)
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError("%dx%dx%d image needs %d bytes of pixels, got %d"
                         % (width, height, channels, stride * height, len(pixels)))
    # Filter 0 on every row: the output is then a pure function of the pixels, easy to compare.
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE_BY_CHANNELS[channels], 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def _as_rgb(pixels):
    return bytes(v for v in pixels for _ in range(3))


def grid(images, cols, scale=1):
    """Tiles same-size images left to right, top to bottom, ``cols`` a row.

    ``images`` are ``(width, height, channels, pixels)`` tuples (what read_png returns); grey
    ones are turned RGB if any image is RGB. Missing cells of the last row stay black. The
    sheet is then enlarged ``scale`` times by repeating pixels (nearest neighbour), so 28x28
    pictures can be seen. Returns one image tuple.
    """
    images = list(images)
    if not images:
        raise ValueError("grid needs at least one image")
    if not isinstance(cols, int) or cols < 1:
        raise ValueError("cols must be an int >= 1, not %r" % (cols,))
    if not isinstance(scale, int) or scale < 1:
        raise ValueError("scale must be an int >= 1, not %r" % (scale,))
    w, h = images[0][0], images[0][1]
    channels = 3 if any(im[2] == 3 for im in images) else 1
    tiles = []
    for k, (iw, ih, ic, px) in enumerate(images):
        if (iw, ih) != (w, h):
            raise ValueError("image %d is %dx%d, image 0 is %dx%d: grid needs one size"
                             % (k, iw, ih, w, h))
        if ic not in (1, 3) or len(px) != iw * ih * ic:
            raise ValueError("image %d is not a valid %dx%dx%d image" % (k, iw, ih, ic))
        tiles.append(_as_rgb(px) if ic != channels else bytes(px))
    rows = (len(tiles) + cols - 1) // cols
    tile_stride = w * channels
    blank = bytes(tile_stride)
    scaled_rows = []
    for r in range(rows):
        row_tiles = tiles[r * cols:(r + 1) * cols]
        for y in range(h):
            line = b"".join(t[y * tile_stride:(y + 1) * tile_stride] for t in row_tiles)
            line += blank * (cols - len(row_tiles))
            if scale > 1:
                line = b"".join(line[i:i + channels] * scale
                                for i in range(0, len(line), channels))
            scaled_rows.extend([line] * scale)
    return cols * w * scale, rows * h * scale, channels, b"".join(scaled_rows)
