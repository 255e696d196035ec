"""A request as the receiver's worker buffers it, before and after it reaches a thread.

`RequestBuffer` collects one request's bytes on the event loop and tells when it is
complete; `BufferUnreader` is what gunicorn's parser then reads (the loop's bytes, never
the socket); `WholeBody` hands the app a complete Content-Length body as the buffer it
arrived in, so a request costs one body of memory, not gunicorn's and Werkzeug's copies;
`Unreadable` stands for a body the loop stopped reading (over the cap, or broken chunk
framing): reading it raises the HTTP error the app answers with.
"""

from __future__ import annotations

from gunicorn.http.unreader import Unreader
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

MAX_CHUNK_LINE = 1024


class RequestBuffer:
    """The bytes of one request as they arrive; `feed` tells when there is enough to serve it.

    Enough means the whole request, or as much as the parser and the app need
    to refuse it: a head over `max_head` bytes, a body over `max_body`, or
    framing that does not parse (gunicorn's parser then answers 4xx). `refused`
    then says why the body was not read to its end (`Unreadable`), if it was not.

    A chunked body is measured by its data, the chunks' sizes; its framing may
    add at most `max_body` more bytes on the wire (a hostile stream of tiny chunks).
    """

    def __init__(self, max_head: int, max_body: int, data: bytes = b"") -> None:
        self.max_head = max_head
        self.max_body = max_body
        self.data = bytearray()
        self.body_start = -1
        self.length = 0
        self.chunked = False
        self.expect_continue = False
        self.refused: HTTPException | None = None  # the body's error, when it was cut short
        self._scan = 0  # where the next chunk-size line starts (chunked bodies)
        self._payload = 0  # data bytes of the chunks before `_scan`
        self.ready = self.feed(data)

    def feed(self, chunk: bytes) -> bool:
        """Add `chunk`; True once the request can be served."""
        self.data += chunk
        if self.body_start < 0:
            end = self.data.find(b"\r\n\r\n")
            if end < 0:
                return len(self.data) > self.max_head
            self.body_start = self._scan = end + 4
            try:
                self._framing(bytes(self.data[:end]))
            except ValueError:
                return True
            if self.length > self.max_body:
                self.refused = RequestEntityTooLarge()
                return True
        if self.chunked:
            return self._chunks_done()
        return len(self.data) - self.body_start >= self.length

    def take(self) -> tuple[bytes, bytearray | None]:
        """The bytes for the parser, and a complete Content-Length body apart, or None.

        The body is this buffer itself, trimmed in place: it reaches the app without a copy.
        """
        data, start, end = self.data, self.body_start, self.body_start + self.length
        if start < 0 or self.chunked or not 0 < self.length <= self.max_body or len(data) < end:
            return bytes(data), None
        parser_bytes = bytes(data[:start]) + bytes(data[end:])  # the head, and what follows
        del data[end:]
        del data[:start]
        return parser_bytes, data

    @property
    def waiting_for_body(self) -> bool:
        return self.body_start >= 0 and len(self.data) == self.body_start

    def _framing(self, head: bytes) -> None:
        lengths: set[int] = set()
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                if not value.isdigit():
                    raise ValueError("bad Content-Length")
                lengths.add(int(value))
            elif name == b"transfer-encoding":
                self.chunked = self.chunked or b"chunked" in value
            elif name == b"expect":
                self.expect_continue = value == b"100-continue"
        if len(lengths) > 1 or (lengths and self.chunked):
            raise ValueError("ambiguous framing")
        self.length = lengths.pop() if lengths else 0

    def _chunks_done(self) -> bool:
        data = self.data
        while True:
            line_end = data.find(b"\r\n", self._scan)
            if line_end < 0:
                return self._broken(len(data) - self._scan > MAX_CHUNK_LINE)
            if line_end - self._scan > MAX_CHUNK_LINE:
                return self._broken(True)
            try:
                size = int(bytes(data[self._scan : line_end]).split(b";")[0].strip(), 16)
            except ValueError:
                return self._broken(True)
            if size == 0:  # last chunk: complete once the trailer section ends
                return data.find(b"\r\n\r\n", line_end) >= 0
            following = line_end + 2 + size + 2
            if self._payload + size > self.max_body or following - self.body_start > 2 * (
                self.max_body + MAX_CHUNK_LINE
            ):
                self.refused = RequestEntityTooLarge()
                return True
            if following > len(data):
                return False
            self._scan = following
            self._payload += size

    def _broken(self, broken: bool) -> bool:
        if broken:
            self.refused = BadRequest("chunked body framing does not parse")
        return broken


class BufferUnreader(Unreader):
    """gunicorn's unreader over the bytes the event loop buffered; end of data after them."""

    def __init__(self) -> None:
        super().__init__()
        self.pending = b""

    def chunk(self, size_hint: int | None = None) -> bytes:
        data, self.pending = self.pending, b""
        return data


class WholeBody:
    """A request body already complete in memory, as gunicorn's `Body` reads it: `read(n)`
    of all of it hands over the buffer itself, so the app holds the one copy."""

    failed = False  # what gunicorn's parser asks of a body before the next request

    def __init__(self, data: bytearray) -> None:
        self._data: bytearray | None = data
        self._at = 0

    def read(self, size: int | None = None) -> bytes | bytearray:
        data, at = self._data, self._at
        if data is None:
            return b""
        if at == 0 and (size is None or size < 0 or size >= len(data)):
            self._data = None  # let go: only the reader holds it now
            return data
        end = len(data) if size is None or size < 0 else min(len(data), at + size)
        self._at = end
        if end == len(data):
            self._data = None
        return bytes(data[at:end])

    def readline(self, size: int | None = None) -> bytes:
        data = self._data
        if data is None:
            return b""
        end = data.find(b"\n", self._at)
        end = len(data) if end < 0 else end + 1
        if size is not None and size >= 0:
            end = min(end, self._at + size)
        return bytes(self.read(end - self._at))

    def __iter__(self) -> WholeBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class Unreadable:
    """The body of a request the loop stopped reading: any read raises `error`, which the
    app answers (413 for a body over the cap) and the worker then closes the connection."""

    failed = True

    def __init__(self, error: HTTPException) -> None:
        self.error = error

    def read(self, size: int | None = None) -> bytes:
        raise self.error

    def readline(self, size: int | None = None) -> bytes:
        raise self.error

    def readlines(self, size: int | None = None) -> list[bytes]:
        raise self.error

    def __iter__(self) -> Unreadable:
        return self

    def __next__(self) -> bytes:
        raise self.error
