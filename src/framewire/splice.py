"""Band splice: re-encode only the top band of a frame and splice it into the sender's JPEG.

The sender encodes every frame with a restart interval of one MCU row
(`encode_params`), so each MCU row's entropy-coded segment stands alone: the
DC predictors restart at every RST marker. A receiver that changed only the
top rows of the decoded picture (the annotation's status strip) encodes just
those rows, with the same quantisation and Huffman tables and the same
restart interval, and puts their segments in place of the first rows' ones.
Everything from the band's last RST marker on is the sender's bytes, so the
coefficients outside the band are the sender's, exactly (same tables, same
bytes). `splice` refuses (SpliceError with a short reason) whatever it cannot
prove equal: no or another restart interval, a non-baseline JPEG, different
tables (another quality, optimised Huffman tables), another size.

The band's end is found with one `bytes.find` per band row (RST0, RST1, ...
in order, each from the previous one): only the band's bytes are read, never
the whole frame. Byte stuffing makes 0xFF followed by 0xD0-0xD7 a marker
wherever it occurs in entropy-coded data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
SOF0, DHT, SOS, DQT, DRI, APP14 = 0xC0, 0xC4, 0xDA, 0xDB, 0xDD, 0xEE
OTHER_SOF = {0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length
# cv2's IMWRITE_JPEG_SAMPLING_FACTOR values, by the luma component's (h, v) factors.
SAMPLING = {
    (1, 1): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    (2, 1): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    (2, 2): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    (1, 2): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440,
    (4, 1): cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
}
DEFAULT_MCU_WIDTH = 16  # cv2's default 4:2:0 sampling of a colour image


class SpliceError(ValueError):
    """The splice cannot apply to this frame; `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def restart_interval(width: int, mcu_width: int = DEFAULT_MCU_WIDTH) -> int:
    """MCUs per row of a frame `width` pixels wide: the restart interval of one MCU row."""
    return -(-width // mcu_width)


def encode_params(quality: int, image: np.ndarray) -> list[int]:
    """cv2.imencode's parameters at the sender for `image`: `quality`, a restart marker every
    MCU row (16 px wide at cv2's default 4:2:0 for colour, 8 for grey)."""
    mcu_width = DEFAULT_MCU_WIDTH if image.ndim == 3 and image.shape[2] > 1 else 8
    interval = restart_interval(image.shape[1], mcu_width)
    return [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, interval]


@dataclass(frozen=True, slots=True)
class Header:
    """What a baseline JPEG's header says, read without touching its entropy-coded data."""

    width: int
    height: int
    components: bytes  # the SOF0 component specifications: (id, sampling, table) each
    coding: bytes  # every DQT, DHT and APP14 segment, in order: what decides the coefficients
    restart: int  # the DRI interval in MCUs; 0 without restart markers
    scan: bytes  # the SOS segment's body
    data_start: int  # offset of the first entropy-coded byte

    @property
    def count(self) -> int:
        """How many components (1: grey, 3: colour)."""
        return len(self.components) // 3

    @property
    def factors(self) -> tuple[int, int]:
        """The luma component's (horizontal, vertical) sampling factors."""
        return self.components[1] >> 4, self.components[1] & 0x0F

    @property
    def mcu(self) -> tuple[int, int]:
        """The MCU's (width, height) in pixels (one 8x8 block for a one-component scan)."""
        if self.count == 1:
            return 8, 8
        sampling = self.components[1::3]
        return 8 * max(s >> 4 for s in sampling), 8 * max(s & 0x0F for s in sampling)


def parse_header(jpeg: bytes) -> Header:
    """The header of `jpeg`, marker by marker up to its only scan; SpliceError if not baseline."""
    try:
        return _parse_header(jpeg)
    except (struct.error, IndexError):
        raise SpliceError("unparsable", "a header segment is too short") from None


def _parse_header(jpeg: bytes) -> Header:
    if not jpeg.startswith(SOI):
        raise SpliceError("unparsable", "no SOI marker")
    size: tuple[int, int] | None = None
    components, coding, restart, at = b"", [], 0, 2
    while True:
        while at < len(jpeg) and jpeg[at] == 0xFF and jpeg[at + 1 : at + 2] == b"\xff":
            at += 1  # fill bytes
        if at + 4 > len(jpeg) or jpeg[at] != 0xFF:
            raise SpliceError("unparsable", f"no marker at offset {at}")
        marker = jpeg[at + 1]
        if marker in STANDALONE:
            at += 2
            continue
        (length,) = struct.unpack_from(">H", jpeg, at + 2)
        body = jpeg[at + 4 : at + 2 + length]
        if length < 2 or len(body) != length - 2:
            raise SpliceError("unparsable", f"segment 0x{marker:02X} cut short")
        if marker in OTHER_SOF:
            raise SpliceError("not_baseline", f"frame type 0x{marker:02X} is not baseline")
        if marker == SOF0:
            height, width = struct.unpack_from(">HH", body, 1)
            size, components = (width, height), body[6 : 6 + 3 * body[5]]
            if not (width and height) or not all(
                1 <= s >> 4 <= 4 and 1 <= s & 0x0F <= 4 for s in components[1::3]
            ):
                raise SpliceError("unparsable", "no size or a sampling factor outside 1..4")
        elif marker in (DQT, DHT, APP14):
            coding.append(jpeg[at : at + 2 + length])
        elif marker == DRI:
            (restart,) = struct.unpack_from(">H", body)
        elif marker == SOS:
            if size is None:
                raise SpliceError("unparsable", "scan before the frame header")
            count = len(components) // 3
            if count not in (1, 3) or body[0] != count:
                raise SpliceError("not_baseline", "not one scan of 1 or 3 components")
            return Header(*size, components, b"".join(coding), restart, body, at + 2 + length)
        at += 2 + length


def band_rows(header: Header, band_height: int) -> int:
    """How many MCU rows cover the top `band_height` pixel rows."""
    return -(-band_height // header.mcu[1])


def band_end(jpeg: bytes, header: Header, rows: int) -> int:
    """The offset of the RST marker that ends MCU row `rows - 1`: `rows` finds, band bytes only."""
    at = header.data_start
    for row in range(rows):
        at = jpeg.find(bytes((0xFF, 0xD0 + row % 8)), at)
        if at < 0:
            raise SpliceError("no_restart", f"restart marker {row} not found")
        if row < rows - 1:
            at += 2
    return at


def encode_band(image: np.ndarray, header: Header, rows: int, quality: int) -> bytes:
    """The top `rows` MCU rows of `image` as a JPEG coded like `header` says (cv2, `quality`)."""
    band = image[: rows * header.mcu[1]]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, header.restart]
    if header.count == 1:
        band = cv2.cvtColor(band, cv2.COLOR_BGR2GRAY)  # exact: a grey JPEG decodes to B=G=R
    else:
        factor = SAMPLING.get(header.factors)
        if factor is None:
            raise SpliceError("sampling", f"sampling {header.factors} has no cv2 setting")
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor]
    ok, buffer = cv2.imencode(".jpg", band, params)
    if not ok:  # pragma: no cover - imencode of a valid image does not fail
        raise SpliceError("encode", "band encode failed")
    return buffer.tobytes()


def splice(original: bytes, image: np.ndarray, band_height: int, quality: int) -> bytes:
    """`original` with its top `band_height` rows re-encoded from `image` at `quality`.

    `image` is `original` decoded, changed only in its top `band_height` rows.
    Raises SpliceError (with a reason) where the result could not be proven
    equal to `original` outside the band's MCU rows.
    """
    header = parse_header(original)
    height, width = image.shape[:2]
    if (width, height) != (header.width, header.height):
        raise SpliceError("size", f"image {width}x{height} is not the JPEG's size")
    mcu_width, mcu_height = header.mcu
    if header.restart == 0:
        raise SpliceError("no_restart", "the JPEG has no restart interval")
    if header.restart != restart_interval(width, mcu_width):
        raise SpliceError("restart_interval", f"restart interval {header.restart} is not a row")
    rows = band_rows(header, band_height)
    if rows * mcu_height >= height:
        raise SpliceError("short_frame", f"the band covers the whole {height} rows")
    cut = band_end(original, header, rows)
    band = encode_band(image, header, rows, quality)
    coded = parse_header(band)
    if (coded.coding, coded.components, coded.scan) != (
        header.coding,
        header.components,
        header.scan,
    ):
        raise SpliceError("tables", "the band's tables or sampling differ from the JPEG's")
    if coded.restart != header.restart or not band.endswith(EOI):
        raise SpliceError("tables", "the band's restart interval differs")  # pragma: no cover
    return b"".join((original[: header.data_start], band[coded.data_start : -2], original[cut:]))
