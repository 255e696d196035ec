"""The band splice: exact outside the band on real frames, a fallback wherever it cannot apply.

Exactness in the DCT domain: the spliced JPEG carries the sender's header (so
the same quantisation and Huffman tables), the band's own tables are
byte-identical to it, and every entropy-coded byte after the band is the
sender's; with restart markers resetting the DC predictors, the same tables
and the same bytes decode to the same coefficients. The pixel checks confirm
it on the decoded pictures.
"""

from __future__ import annotations

import re
import time

import cv2
import numpy as np
import pytest
import simplejpeg

from conftest import wait_until
from framewire.config import ReceiverConfig
from framewire.encodes import jpeg
from framewire.frame import Frame
from framewire.hub import Hub
from framewire.metrics import ReceiverMetrics
from framewire.overlay import Strip, strip_height
from framewire.pipeline import Pipeline
from framewire.processing import Motion, passthrough
from framewire.sources import SyntheticSource
from framewire.splice import (
    SpliceError,
    band_end,
    band_rows,
    encode_band,
    encode_params,
    parse_header,
    restart_interval,
    splice,
)
from framewire.transports.http import HttpSender
from framewire.variants import FULL, scaled

PATH = "framewire_viewer_encode_path_total"
SIZES = [(640, 480), (1280, 720), (1920, 1080), (1366, 768), (642, 362), (320, 240)]
# The sender's own encode (4:2:0) and what any other producer may send: the other samplings
# cv2 writes, and grey.
SAMPLINGS = {
    "sender-420": None,
    "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    "440": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440,
    "411": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
    "grey": "grey",
}
MCU_WIDTH = {"sender-420": 16, "444": 8, "422": 16, "440": 8, "411": 32, "grey": 8}


def synthetic(width: int, height: int) -> np.ndarray:
    source = SyntheticSource(width, height, fps=0)
    source.open()
    return source.read()


def natural(width: int, height: int) -> np.ndarray:
    """A natural-looking picture: 1/f noise over octaves (clouds, texture), soft shapes, edges."""
    rng = np.random.default_rng(width * height)
    image = np.zeros((height, width, 3), np.float32)
    for octave in range(1, 8):
        cells = rng.normal(0, 1, (2**octave + 1, 2**octave + 1, 3)).astype(np.float32)
        image += cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC) / octave
    image = (image - image.min()) / (image.max() - image.min()) * 200 + 20
    for _ in range(12):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(5, height // 4)), colour, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(image, (3, 3), 0).astype(np.uint8)


def encode(image: np.ndarray, sampling: str, quality: int = 80) -> bytes:
    """`image` encoded as the sender does it (sender-420), or with another sampling."""
    width = image.shape[1]
    if sampling == "sender-420":
        params = encode_params(quality, image)
    else:
        interval = restart_interval(width, MCU_WIDTH[sampling])
        params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, interval]
    if sampling == "grey":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif SAMPLINGS[sampling] is not None:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLINGS[sampling]]
    ok, buffer = cv2.imencode(".jpg", image, params)
    assert ok
    return buffer.tobytes()


def strict(jpeg: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(jpeg, colorspace="BGR", strict=True)


def annotated(jpeg: bytes) -> np.ndarray:
    """`jpeg` decoded and annotated as a receiver does it."""
    return Strip("redis", "camera-with-a-long-name").draw(strict(jpeg), 123456, 29.97, 4.5)


def restart_numbers(jpeg: bytes, start: int) -> list[int]:
    """Every RST marker's number in the entropy-coded data from `start` (scans it all)."""
    return [m[1] - 0xD0 for m in re.findall(rb"\xff[\xd0-\xd7]", jpeg[start:])]


@pytest.mark.parametrize("picture", [synthetic, natural])
@pytest.mark.parametrize("sampling", list(SAMPLINGS))
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_splice_is_exact_outside_the_band(
    width: int, height: int, sampling: str, picture
) -> None:
    original = encode(picture(width, height), sampling)
    before = strict(original)
    image = annotated(original)
    band_height = strip_height(width)
    spliced = splice(original, image, band_height, 80)

    header = parse_header(original)
    mcu_height = header.mcu[1]
    rows = band_rows(header, band_height)
    assert (rows - 1) * mcu_height < band_height <= rows * mcu_height
    # The same tables: the sender's header as it was, and the band coded with the same ones.
    assert spliced[: header.data_start] == original[: header.data_start]
    band = parse_header(encode_band(image, header, rows, 80))
    assert (band.coding, band.components, band.scan) == (
        header.coding,
        header.components,
        header.scan,
    )
    # The same bytes after the band, from the RST marker that ends its last row.
    cut = band_end(original, header, rows)
    assert original[cut] == 0xFF and original[cut + 1] == 0xD0 + (rows - 1) % 8
    assert spliced.endswith(original[cut:])
    assert len(spliced) - len(original[cut:]) > header.data_start  # the band's own segments
    # One segment per MCU row, numbered in sequence, in both.
    total_rows = -(-height // mcu_height)
    numbers = [n % 8 for n in range(total_rows - 1)]
    assert restart_numbers(original, header.data_start) == numbers
    assert restart_numbers(spliced, header.data_start) == numbers

    after = strict(spliced)
    assert after.shape == before.shape
    # Pixel-identical below the band, but for the one row that 4:2:0's vertical chroma
    # upsampling blends with the band's last chroma row; nothing blends without it.
    blended = 1 if header.factors[1] == 2 and header.count == 3 else 0
    differ = np.nonzero(np.any(after != before, axis=(1, 2)))[0]
    assert differ.size and differ.max() < rows * mcu_height + blended, (differ.max(), rows)
    # And the band shows the annotation (re-encoded, so close to it, not equal).
    error = np.abs(after[:band_height].astype(int) - image[:band_height]).mean()
    assert error < 6, error
    assert np.abs(before[:band_height].astype(int) - image[:band_height]).mean() > 4 * error


def test_the_client_encodes_images_as_the_sender_does() -> None:
    """A restart marker every MCU row (4:2:0: 16 px wide), whatever the width."""
    sender = HttpSender(quality=80)
    try:
        for width, height in SIZES:
            frame = sender.frame(synthetic(width, height), None, None, None)
            header = parse_header(frame.jpeg)
            assert header.mcu == (16, 16) and header.restart == -(-width // 16), width
            grey = parse_header(
                sender.frame(np.zeros((64, width), np.uint8), None, None, None).jpeg
            )
            assert grey.mcu == (8, 8) and grey.restart == -(-width // 8), width
    finally:
        sender.close()


def test_the_annotation_changes_only_its_strip() -> None:
    """The band's height comes from overlay.strip_height: nothing below it may change."""
    for width in [*range(64, 4100, 37), *(w for w, _ in SIZES)]:
        image = np.full((max(100, width // 4), width, 3), 255, np.uint8)
        Strip("redis", "y" * 64).draw(image, 10**18, 999.9, 99999.9)
        changed = np.nonzero(np.any(image != 255, axis=(1, 2)))[0]
        assert changed.max() == strip_height(width) - 1, width


def refused(original: bytes, image: np.ndarray, quality: int = 80) -> str:
    with pytest.raises(SpliceError) as caught:
        splice(original, image, strip_height(image.shape[1]), quality)
    return caught.value.reason


def test_fallbacks_name_why_the_splice_cannot_apply() -> None:
    picture = natural(640, 360)
    sender = encode(picture, "sender-420")
    image = annotated(sender)
    assert (
        refused(sender, image, quality=70) == "tables"
    )  # the viewer's quality is not the sender's
    interval = restart_interval(640)
    cases = {
        "no_restart": [cv2.IMWRITE_JPEG_QUALITY, 80],
        "restart_interval": [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_RST_INTERVAL, 10],
        "not_baseline": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_RST_INTERVAL, interval],
        "tables": [cv2.IMWRITE_JPEG_OPTIMIZE, 1, cv2.IMWRITE_JPEG_RST_INTERVAL, interval],
    }
    for reason, params in cases.items():
        original = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 80, *params])[1]
        assert refused(original.tobytes(), image) == reason, reason
    assert refused(sender, image[:, :320]) == "size"
    cut = parse_header(sender).data_start + 20
    assert refused(sender[:cut] + b"\xff\xd9", image) == "no_restart"  # cut short in the band
    for end in range(parse_header(sender).data_start):  # every header cut short
        assert refused(sender[:end], image) == "unparsable", end
    sof = sender.index(b"\xff\xc0")
    for offset, value in ((5, b"\x00\x00"), (11, b"\x52")):  # height 0; sampling 5x2
        broken = bytearray(sender)
        broken[sof + offset : sof + offset + len(value)] = value
        assert refused(bytes(broken), image) == "unparsable", offset
    thin = natural(640, 32)  # the band (2 MCU rows of 16) would be the whole frame
    assert refused(encode(thin, "sender-420"), annotated(encode(thin, "sender-420"))) == (
        "short_frame"
    )


def path_count(metrics: ReceiverMetrics, path: str, reason: str, camera: str = "cam0") -> float:
    labels = {"camera": camera, "transport": "http", "path": path, "reason": reason}
    return metrics.registry.get_sample_value(PATH, labels) or 0.0


def test_the_channel_splices_only_full_size_frames_it_may() -> None:
    metrics = ReceiverMetrics()
    hub = Hub(metrics, ReceiverConfig(stale_after=30.0, stream_quality=80))
    try:
        channel = hub.add("cam0")
        original = encode(synthetic(1280, 720), "sender-420")
        image = annotated(original)
        channel.publish(image, 1, time.time_ns(), original)
        assert channel.cache.get(FULL).jpeg == splice(original, image, strip_height(1280), 80)
        assert path_count(metrics, "splice", "ok") == 1
        small = channel.cache.get((640, None, True))  # a variant: always the full encode, scaled
        assert strict(small.jpeg).shape == (360, 640, 3)
        assert path_count(metrics, "full", "variant") == 1
        channel.publish(image, 2, time.time_ns())  # no original: a processor ran
        assert strict(channel.cache.get(FULL).jpeg).shape == (720, 1280, 3)
        assert path_count(metrics, "full", "processed") == 1
        plain = cv2.imencode(".jpg", strict(original), [cv2.IMWRITE_JPEG_QUALITY, 80])[1]
        channel.publish(image, 3, time.time_ns(), plain.tobytes())
        channel.cache.get(FULL)
        assert path_count(metrics, "full", "no_restart") == 1
        assert path_count(metrics, "splice", "ok") == 1
    finally:
        hub.close()


def test_a_key_without_the_strip_serves_the_picture_under_it() -> None:
    metrics = ReceiverMetrics()
    hub = Hub(metrics, ReceiverConfig(stale_after=30.0, stream_quality=80))
    bare = (None, None, False)
    try:
        channel = hub.add("cam0")
        original = encode(synthetic(1280, 720), "sender-420")
        under = strict(original)[: strip_height(1280)].copy()
        channel.publish(annotated(original), 1, time.time_ns(), original, under=under)
        assert channel.cache.get(bare).jpeg == original  # the sender's bytes: no encode
        assert path_count(metrics, "splice", "ok") + path_count(metrics, "full", "processed") == 0
        channel.publish(annotated(original), 2, time.time_ns(), under=under)  # processed
        assert channel.cache.get(bare).jpeg == jpeg(strict(original), 80)
        small = channel.cache.get((640, None, False)).jpeg
        assert small == jpeg(scaled(strict(original), 640), 80)
    finally:
        hub.close()


@pytest.mark.parametrize(
    ("processor", "path", "reason"),
    [(lambda: passthrough, "splice", "ok"), (Motion, "full", "processed")],
)
def test_only_the_none_processor_lets_the_pipeline_splice(processor, path, reason) -> None:
    config = ReceiverConfig(transport="http", stale_after=30.0, forget_after=60.0)
    metrics = ReceiverMetrics()
    pipeline = Pipeline(Hub(metrics, config), metrics, config, processor)
    try:
        jpeg = encode(natural(640, 480), "sender-420")
        pipeline.ingest(Frame("cam7", 1, time.time_ns(), jpeg))
        channel = pipeline.hub.find("cam7")
        wait_until(lambda: channel.cache.get().seq == 1, what="frame 1 published")
        assert path_count(metrics, path, reason, "cam7") == 1
        other = ("full", "processed") if path == "splice" else ("splice", "ok")
        assert path_count(metrics, *other, "cam7") == 0
        assert pipeline.sweep(time.monotonic() + 3600) == ["cam7"]
        assert path_count(metrics, path, reason, "cam7") == 0  # forgotten with the camera
    finally:
        pipeline.hub.close()
        pipeline.close()
