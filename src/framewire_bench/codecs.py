"""The codec floor, the JPEG libraries side by side, and the physical limit of one frame.

`codec_cost` is the floor: what one viewed frame's JPEG work costs with the
libraries framewire uses (`FRAMEWIRE_LIBRARIES`), timed in process.

`compare` times, on the same synthetic frames, encode and decode with each
JPEG library the registries offer: cv2 (OpenCV's bundled libjpeg-turbo),
simplejpeg and PyTurboJPEG (over the system's libturbojpeg), all at one
quality, 4:2:0 chroma subsampling, BGR in and out. Every library decodes the
same bytes (cv2's encode of each frame, as the sender makes them), so decode
times compare like for like. It also times cv2's encode with a restart
marker after every MCU row (the sender's setting for band splicing) and each
library's decode at half scale in the DCT (what a reduced variant needs). A
library that is missing is reported as not available, with the reason.

The physical limit (encode, loopback transfer, decode in one process) is in
limit.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from framewire.splice import restart_interval

QUALITY = 80
WARMUP_FRAMES = 5
# What framewire itself runs at each step (the codec floor and the physical limit use these).
FRAMEWIRE_LIBRARIES = {"encode": "cv2", "decode": "simplejpeg", "viewer": "cv2"}
STEPS = ("encode", "encode_rst", "decode", "decode_half")

Image = np.ndarray
Encode = Callable[[Image], bytes]
Decode = Callable[[bytes], Image]


@dataclass
class Library:
    """One JPEG library's calls, as the bench times them (None: the library cannot)."""

    name: str
    version: str
    encode: Encode
    decode: Decode
    decode_half: Decode
    encode_rst: Callable[[Image], bytes] | None = None


def _cv2(quality: int) -> Library:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]

    def encode(image: Image, extra: tuple[int, ...] = ()) -> bytes:
        ok, buffer = cv2.imencode(".jpg", image, [*params, *extra])
        if not ok:
            raise RuntimeError("cv2 could not encode a frame")
        return buffer.tobytes()

    def encode_rst(image: Image) -> bytes:  # a restart marker after every MCU row (16 px)
        return encode(image, (cv2.IMWRITE_JPEG_RST_INTERVAL, restart_interval(image.shape[1])))

    def decoder(flag: int) -> Decode:
        return lambda jpeg: cv2.imdecode(np.frombuffer(jpeg, np.uint8), flag)

    return Library(
        "cv2",
        cv2.__version__,
        encode,
        decoder(cv2.IMREAD_COLOR),
        decoder(cv2.IMREAD_REDUCED_COLOR_2),
        encode_rst,
    )


def _simplejpeg(quality: int) -> Library:
    import simplejpeg

    def encode(image: Image) -> bytes:
        return simplejpeg.encode_jpeg(
            image, quality=quality, colorspace="BGR", colorsubsampling="420"
        )

    def decode(jpeg: bytes) -> Image:  # strict, as the receivers decode
        return simplejpeg.decode_jpeg(jpeg, colorspace="BGR", strict=True)

    def decode_half(jpeg: bytes) -> Image:  # the smallest DCT scale at least half the size
        height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
        return simplejpeg.decode_jpeg(
            jpeg,
            colorspace="BGR",
            strict=True,
            min_width=width // 2,
            min_height=height // 2,
        )

    return Library("simplejpeg", simplejpeg.__version__, encode, decode, decode_half)


def _turbojpeg(quality: int) -> Library:
    from importlib.metadata import version

    import turbojpeg

    codec = turbojpeg.TurboJPEG()  # OSError without libturbojpeg (Debian: libturbojpeg0)
    strict = turbojpeg.TJFLAG_STOPONWARNING

    def encode(image: Image) -> bytes:
        return codec.encode(
            image,
            quality=quality,
            pixel_format=turbojpeg.TJPF_BGR,
            jpeg_subsample=turbojpeg.TJSAMP_420,
        )

    def decode(jpeg: bytes) -> Image:
        return codec.decode(jpeg, pixel_format=turbojpeg.TJPF_BGR, flags=strict)

    def decode_half(jpeg: bytes) -> Image:
        return codec.decode(
            jpeg, pixel_format=turbojpeg.TJPF_BGR, scaling_factor=(1, 2), flags=strict
        )

    return Library("turbojpeg", version("PyTurboJPEG"), encode, decode, decode_half)


FACTORIES: dict[str, Callable[[int], Library]] = {
    "cv2": _cv2,
    "simplejpeg": _simplejpeg,
    "turbojpeg": _turbojpeg,
}


def load(
    quality: int = QUALITY, names: tuple[str, ...] = tuple(FACTORIES)
) -> tuple[dict[str, Library], dict[str, str]]:
    """The libraries that load, and why each other one does not."""
    loaded, missing = {}, {}
    for name in names:
        try:
            loaded[name] = FACTORIES[name](quality)
        except (ImportError, OSError, RuntimeError) as exc:
            missing[name] = f"not available: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    return loaded, missing


def frames(width: int, height: int, count: int) -> list[Image]:
    """`count` consecutive synthetic frames (the pattern moves from one to the next)."""
    from framewire.sources import SyntheticSource

    source = SyntheticSource(width, height, fps=0)
    return [source.read().copy() for _ in range(count)]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def compare(width: int, height: int, count: int = 50, quality: int = QUALITY) -> dict[str, Any]:
    """Median ms (wall and CPU) of each library's steps on the same frames; the fastest.

    The libraries take turns on each frame, first one then the next, so a
    burst of load elsewhere or a warm cache favours none of them. `bytes` is
    the median size of a library's own encode; `shape_half` the size its
    half-scale decode returned.
    """
    libraries, missing = load(quality)
    images = frames(width, height, count + WARMUP_FRAMES)
    sender = libraries["cv2"] if "cv2" in libraries else FACTORIES["cv2"](quality)
    times: dict[str, dict[str, list[float]]] = {n: {s: [] for s in STEPS} for n in libraries}
    cpu_times: dict[str, dict[str, list[float]]] = {n: {s: [] for s in STEPS} for n in libraries}
    sizes: dict[str, dict[str, list[int]]] = {
        n: {"encode": [], "encode_rst": []} for n in libraries
    }
    half: dict[str, list[int]] = {}
    order = list(libraries.items())
    for index, image in enumerate(images):
        jpeg = sender.encode(image)  # what every library decodes
        turn = index % len(order) if order else 0
        for name, library in order[turn:] + order[:turn]:
            calls: list[tuple[str, Callable[[Any], Any], Any]] = [
                ("encode", library.encode, image),
                ("decode", library.decode, jpeg),
                ("decode_half", library.decode_half, jpeg),
            ]
            if library.encode_rst is not None:
                calls.append(("encode_rst", library.encode_rst, image))
            for step, call, argument in calls:
                started, cpu_started = time.perf_counter(), time.thread_time()
                output = call(argument)
                elapsed = time.perf_counter() - started
                cpu = time.thread_time() - cpu_started
                if index < WARMUP_FRAMES:  # the first calls warm up caches and allocator
                    continue
                times[name][step].append(elapsed)
                cpu_times[name][step].append(cpu)
                if step in sizes[name]:
                    sizes[name][step].append(len(output))
                elif step == "decode_half":
                    half[name] = list(output.shape)
    table: dict[str, Any] = {}
    for name, library in libraries.items():
        figures: dict[str, Any] = {"available": True, "version": library.version}
        for step in STEPS:
            values = times[name][step]
            figures[f"{step}_ms"] = median_ms(values) if values else None
            cpu = cpu_times[name][step]
            figures[f"{step}_cpu_ms"] = median_ms(cpu) if cpu else None
        for step, values in sizes[name].items():
            figures[f"{step}_bytes" if step != "encode" else "bytes"] = (
                statistics.median(values) if values else None
            )
        figures["shape_half"] = half.get(name, [])
        table[name] = figures
    for name, reason in missing.items():
        table[name] = {"available": False, "reason": reason}
    return {
        "quality": quality,
        "subsampling": "4:2:0",
        "restart_interval": restart_interval(width),
        "libraries": table,
        "fastest": fastest(table),
    }


def fastest(table: dict[str, Any]) -> dict[str, str | None]:
    """The library with the lowest median CPU time per step (None when none was timed).

    CPU time (the calling thread's, each library codes on it alone) rather
    than wall time, so other processes' load on the machine does not decide;
    wall time where no CPU time was taken.
    """
    picks: dict[str, str | None] = {}
    for step in ("encode", "decode", "decode_half"):
        timed = {}
        for name, figures in table.items():
            value = figures.get(f"{step}_cpu_ms", figures.get(f"{step}_ms"))
            if value is not None:
                timed[name] = value
        picks[step] = min(timed, key=timed.__getitem__) if timed else None
    return picks


# --- the physical limit ------------------------------------------------------------------------


def codec_cost(width: int, height: int, count: int = 50) -> dict[str, float]:
    """Median ms of the codec work one viewed frame needs, with framewire's own libraries.

    As the services do it (`FRAMEWIRE_LIBRARIES`): the sender's encode, the
    receiver's strict decode to BGR, and the receiver's encode for the viewer,
    at quality 80. `total_ms` is encode + decode (the transport's baseline);
    `floor_ms` adds the viewer encode (the CPU floor of a frame).
    """
    libraries = {step: FACTORIES[name](QUALITY) for step, name in FRAMEWIRE_LIBRARIES.items()}
    steps: dict[str, list[float]] = {"encode": [], "decode": [], "viewer": [], "total": []}
    steps["floor"], sizes = [], []
    for index, image in enumerate(frames(width, height, count + WARMUP_FRAMES)):
        started = time.perf_counter()
        jpeg = libraries["encode"].encode(image)
        encoded = time.perf_counter()
        decoded = libraries["decode"].decode(jpeg)
        decoded_at = time.perf_counter()
        libraries["viewer"].encode(decoded)
        finished = time.perf_counter()
        if index >= WARMUP_FRAMES:
            steps["encode"].append(encoded - started)
            steps["decode"].append(decoded_at - encoded)
            steps["viewer"].append(finished - decoded_at)
            steps["total"].append(decoded_at - started)
            steps["floor"].append(finished - started)
            sizes.append(len(jpeg))
    medians = {key: median_ms(values) for key, values in steps.items()}
    return {
        "encode_ms": medians["encode"],
        "decode_ms": medians["decode"],
        "viewer_encode_ms": medians["viewer"],
        "total_ms": medians["total"],
        "floor_ms": medians["floor"],
        "bytes": statistics.median(sizes),
    }


def splice_cost(width: int, height: int, count: int = 50) -> dict[str, float]:
    """Median ms of the viewer's full-size encode as framewire does it: the band splice.

    The sender's encode with a restart marker every MCU row, the strict decode,
    the status strip, then `splice.splice` (the band re-encoded and joined to
    the sender's JPEG) against the full encode of the same annotated frame.
    """
    import cv2

    from framewire.overlay import Strip, strip_height
    from framewire.splice import encode_params, splice

    decoder = FACTORIES[FRAMEWIRE_LIBRARIES["decode"]](QUALITY)
    strip, plain = Strip("http", "cam0"), [cv2.IMWRITE_JPEG_QUALITY, QUALITY]
    steps: dict[str, list[float]] = {"splice": [], "full": []}
    for index, image in enumerate(frames(width, height, count + WARMUP_FRAMES)):
        jpeg = cv2.imencode(".jpg", image, encode_params(QUALITY, image))[1].tobytes()
        shown = strip.draw(decoder.decode(jpeg), index, 30.0, 5.0)
        started = time.perf_counter()
        splice(jpeg, shown, strip_height(width), QUALITY)
        spliced = time.perf_counter()
        cv2.imencode(".jpg", shown, plain)
        finished = time.perf_counter()
        if index >= WARMUP_FRAMES:
            steps["splice"].append(spliced - started)
            steps["full"].append(finished - spliced)
    return {f"viewer_{key}_ms": median_ms(values) for key, values in steps.items()}


def section(width: int, height: int) -> dict[str, Any]:
    """The bench's codec section for one size: the floors, the splice, the libraries.

    `own_floor_ms` is framewire's own floor: encode + decode + the band splice
    its receivers do for the viewer instead of a full encode.
    """
    cost, splice = codec_cost(width, height), splice_cost(width, height)
    return {
        **cost,
        **splice,
        "own_floor_ms": cost["total_ms"] + splice["viewer_splice_ms"],
        "floor_libraries": dict(FRAMEWIRE_LIBRARIES),
        **compare(width, height),
    }
