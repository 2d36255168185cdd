"""Serving the two Uptane repositories over HTTP, read-only.

TUF metadata and images are signed, so the server needs no secret and trusts nothing it
serves; it only maps URLs to files without ever leaving the repository folders:

- ``/image/metadata/<file>`` and ``/image/targets/<path>``: the Image repository;
- ``/director/<VIN>/metadata/<file>``: the Director's repository for that vehicle.

Anything else (listings, ``..``, hidden files, temporary files) answers 404. A single
``Range: bytes=N-`` or ``bytes=N-M`` is answered 206 with that part (so a vehicle resumes an
interrupted image download); a range past the end answers 416, any other form the whole file.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final, Self
from urllib.parse import unquote, urlsplit

from drivetrain.cloud.ota.layout import OtaLayout

_SEGMENT: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+%-]{0,200}")
_VIN: Final = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_CHUNK: Final = 64 * 1024
_RANGE: Final = re.compile(r"bytes=(\d{1,19})-(\d{0,19})")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The ``[start, end)`` a ``Range`` header asks of a ``size``-byte file; None for the
    whole file (no header, or a form not served: several ranges, suffix ranges); False when
    it starts at or past the end (416)."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    start = int(match.group(1))
    end = min(int(match.group(2)) + 1, size) if match.group(2) else size
    if start >= size or end <= start:
        return False
    return start, end


def resolve(layout: OtaLayout, url_path: str) -> Path | None:
    """The file a URL path names, or None when it names nothing servable."""
    parts = [unquote(p) for p in urlsplit(url_path).path.split("/") if p]
    if not parts or not all(_SEGMENT.fullmatch(p) and ".." not in p for p in parts):
        return None
    if parts[0] == "image" and len(parts) >= 3 and parts[1] in ("metadata", "targets"):
        if parts[1] == "metadata" and len(parts) != 3:
            return None
        base = layout.image_path / parts[1]
        rest = parts[2:]
    elif parts[0] == "director" and len(parts) == 4 and _VIN.fullmatch(parts[1]) \
            and parts[2] == "metadata":
        base = layout.director_path / "vehicles" / parts[1] / "metadata"
        rest = parts[3:]
    else:
        return None
    path = base.joinpath(*rest)
    try:
        path.resolve().relative_to(base.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


def make_server(layout: OtaLayout, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threading HTTP server for ``layout`` (``port`` 0: any free port)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "drivetrain-ota"

        def do_GET(self) -> None:
            path = resolve(layout, self.path)
            if path is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            try:
                size = path.stat().st_size
                wanted = byte_range(self.headers.get("Range"), size)
                if wanted is False:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = wanted if isinstance(wanted, tuple) else (0, size)
                with open(path, "rb") as f:
                    f.seek(start)
                    if isinstance(wanted, tuple):
                        self.send_response(HTTPStatus.PARTIAL_CONTENT)
                        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
                    else:
                        self.send_response(HTTPStatus.OK)
                    kind = "application/json" if path.suffix == ".json" else \
                        "application/octet-stream"
                    self.send_header("Content-Type", kind)
                    self.send_header("Accept-Ranges", "bytes")
                    self.send_header("Content-Length", str(end - start))
                    self.end_headers()
                    left = end - start
                    while left and (chunk := f.read(min(_CHUNK, left))):
                        self.wfile.write(chunk)
                        left -= len(chunk)
            except FileNotFoundError:
                self.send_error(HTTPStatus.NOT_FOUND)

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: a vehicle polls often

    return ThreadingHTTPServer((host, port), Handler)


class BackgroundServer:
    """``make_server`` on a daemon thread; a context manager giving its base URL."""

    def __init__(self, layout: OtaLayout, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(layout, host, port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
