"""Resumable image downloads: an ngclient fetcher that keeps the bytes of an interrupted
target download and asks for the rest with an HTTP ``Range`` request.

Only target (image) URLs under ``targets_url`` resume; metadata is small and always fetched
whole. The kept bytes live in ``parts_dir`` under a name derived from the URL — and since
TUF target URLs carry the image's hash (consistent snapshots), a part never mixes two
versions of a file. Trust is unchanged: ngclient checks the length and hashes of the whole
reassembled image against the signed targets metadata, so tampered kept bytes or a server
that answers a range with other bytes make the download fail verification; the part is
dropped when a download completes (verified or not), so the next attempt starts afresh.
A server that ignores ``Range`` (200) restarts the download from the first byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import urllib3
from tuf.api import exceptions
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_READ_CHUNK: Final = 16 * 1024


class ResumableFetcher(Urllib3Fetcher):
    """A :class:`Urllib3Fetcher` that resumes interrupted downloads under ``targets_url``."""

    def __init__(self, parts_dir: Path, targets_url: str, *, socket_timeout: int = 15,
                 app_user_agent: str | None = "drivetrain") -> None:
        super().__init__(socket_timeout=socket_timeout, app_user_agent=app_user_agent)
        self.parts_dir = Path(parts_dir)
        self.targets_url = targets_url.rstrip("/") + "/"
        #: Bytes not downloaded again thanks to resuming, since this fetcher was made.
        self.bytes_resumed = 0

    def part_path(self, url: str) -> Path:
        """Where the kept bytes of ``url`` are."""
        return self.parts_dir / (hashlib.sha256(url.encode()).hexdigest()[:40] + ".part")

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(self.targets_url):
            return super()._fetch(url)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        part = self.part_path(url)
        have = part.stat().st_size if part.is_file() else 0
        response = self._request(url, have)
        if have and response.status == 416:  # the kept bytes do not fit the file: restart
            response.close()
            part.unlink(missing_ok=True)
            have, response = 0, self._request(url, 0)
        if response.status >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(
                f"HTTP error occurred with status {response.status}", response.status)
        if have and not (response.status == 206 and self._starts_at(response, have)):
            have = 0  # the server sent the whole file (no Range support): start over
        return self._resumed_chunks(response, part, have)

    def _request(self, url: str, have: int) -> urllib3.response.BaseHTTPResponse:
        headers = {"Range": f"bytes={have}-"} if have else None
        try:
            return self._proxy_env.request(
                "GET", url, headers=headers, preload_content=False,
                timeout=urllib3.Timeout(self.socket_timeout))
        except urllib3.exceptions.MaxRetryError as e:
            if isinstance(e.reason, urllib3.exceptions.TimeoutError):
                raise exceptions.SlowRetrievalError from e
            raise

    @staticmethod
    def _starts_at(response: urllib3.response.BaseHTTPResponse, offset: int) -> bool:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        return match is not None and int(match.group(1)) == offset

    def _resumed_chunks(self, response: urllib3.response.BaseHTTPResponse, part: Path,
                        have: int) -> Iterator[bytes]:
        completed = False
        try:
            with open(part, "r+b" if have else "wb") as kept:
                while have and (chunk := kept.read(min(_READ_CHUNK, have - kept.tell()))):
                    self.bytes_resumed += len(chunk)
                    yield chunk
                kept.seek(have)
                kept.truncate()
                # small reads: what a cut-off read held is lost, so lose little
                for chunk in response.stream(_READ_CHUNK):
                    kept.write(chunk)
                    kept.flush()
                    yield chunk
            completed = True
        except GeneratorExit:  # the reader stopped (e.g. more bytes than the signed length)
            part.unlink(missing_ok=True)
            raise
        except urllib3.exceptions.TimeoutError as e:
            raise exceptions.SlowRetrievalError from e
        except urllib3.exceptions.HTTPError as e:  # cut off mid-body: keep what arrived
            raise exceptions.DownloadError(
                f"download interrupted after {part.stat().st_size:,} bytes (kept to resume): "
                f"{e}") from e
        finally:
            response.release_conn()
            if completed:
                part.unlink(missing_ok=True)  # verified or not, the next try starts afresh
