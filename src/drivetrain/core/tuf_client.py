"""The vehicle's client for one TUF repository: python-tuf's ngclient, with our limits.

The ngclient ``Updater`` runs the TUF client workflow (TUF spec §5: root rotation, timestamp,
snapshot, targets, delegations) and refuses rollback, freeze, mix-and-match, bad signatures
and hashes. We choose its limits: metadata and image sizes (endless-data attacks), the number
of root rotations and delegations walked, and a request timeout (slow retrieval).

These functions back ``drivetrain ota tuf-client``, the command-line protocol of the TUF
conformance suite (``init`` / ``refresh`` / ``download``), and the Uptane primary
(``drivetrain.edge``). They live in ``core`` so the command starts without loading the edge
agent: the suite runs the client hundreds of times.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from drivetrain.core.errors import BadInputError, TransportError, VerificationError

#: Largest metadata files the vehicle reads, bytes (an endless-data attack stops here).
MAX_ROOT_BYTES: Final = 512 * 1024
MAX_TIMESTAMP_BYTES: Final = 16 * 1024
MAX_SNAPSHOT_BYTES: Final = 2 * 1024 * 1024
MAX_TARGETS_BYTES: Final = 5 * 1024 * 1024
MAX_ROOT_ROTATIONS: Final = 32
MAX_DELEGATIONS: Final = 32
#: Seconds a connection may stay silent before the download is abandoned (slow retrieval).
REQUEST_TIMEOUT_S: Final = 15


class TufUpdateError(VerificationError):
    """A TUF repository's metadata or an image failed verification; names the cause."""


class TufTransportError(TransportError):
    """A TUF repository could not be reached or answered an error."""


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified image on disk: its target name, local path and length."""

    name: str
    path: Path
    length: int
    cached: bool


def config() -> UpdaterConfig:
    """The Updater limits the vehicle runs with."""
    return UpdaterConfig(
        max_root_rotations=MAX_ROOT_ROTATIONS, max_delegations=MAX_DELEGATIONS,
        root_max_length=MAX_ROOT_BYTES, timestamp_max_length=MAX_TIMESTAMP_BYTES,
        snapshot_max_length=MAX_SNAPSHOT_BYTES, targets_max_length=MAX_TARGETS_BYTES,
    )


def init(metadata_dir: Path, trusted_root: Path) -> None:
    """Install the trusted root (as shipped in the vehicle) into ``metadata_dir``.

    Raises:
        BadInputError: the root file cannot be read.
    """
    metadata_dir.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(trusted_root, metadata_dir / "root.json")
    except OSError as e:
        raise BadInputError(f"trusted root {trusted_root}: {e.strerror or e}") from e


def updater(
    metadata_dir: Path, metadata_url: str, target_dir: Path | None = None,
    target_base_url: str | None = None, *, timeout_s: int = REQUEST_TIMEOUT_S,
    fetcher: FetcherInterface | None = None,
) -> Updater:
    """An ngclient Updater over ``metadata_dir`` (which must hold a trusted ``root.json``);
    a connection silent for ``timeout_s`` seconds fails the update (slow retrieval).
    ``fetcher``: another fetcher (e.g. one that resumes downloads) instead of urllib3's."""
    if not (metadata_dir / "root.json").is_file():
        raise BadInputError(
            f"no trusted root in {metadata_dir}; run 'init' with the repository's root first"
        )
    return Updater(
        str(metadata_dir), metadata_url,
        target_dir=None if target_dir is None else str(target_dir),
        target_base_url=target_base_url, config=config(), bootstrap=None,
        fetcher=fetcher or Urllib3Fetcher(socket_timeout=timeout_s, app_user_agent="drivetrain"),
    )


def translate(e: Exception) -> Exception:
    """Our error for an ngclient one: network failures are transport errors, the rest
    verification errors (the message keeps the library's cause)."""
    if isinstance(e, tuf_errors.DownloadError) and not isinstance(
        e, tuf_errors.DownloadLengthMismatchError
    ):
        return TufTransportError(f"TUF repository unreachable or refused: {e}")
    return TufUpdateError(f"{type(e).__name__}: {e}")


def refresh(metadata_dir: Path, metadata_url: str, *, timeout_s: int = REQUEST_TIMEOUT_S) -> None:
    """Run the TUF top-level metadata update against ``metadata_url``.

    Raises:
        TufUpdateError: metadata failed verification (rollback, freeze, bad signature...).
        TufTransportError: the repository could not be reached.
    """
    try:
        updater(metadata_dir, metadata_url, timeout_s=timeout_s).refresh()
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, tuf_errors.StorageError) as e:
        raise translate(e) from e


def download(
    metadata_dir: Path, metadata_url: str, target_names: Sequence[str], target_dir: Path,
    target_base_url: str,
) -> list[Downloaded]:
    """Refresh, then download and verify each target in order (one Updater for all); an
    image already in ``target_dir`` with matching length and hashes is not fetched again.

    Raises:
        TufUpdateError: metadata or an image failed verification, or a target is unknown.
        TufTransportError: the repository could not be reached.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    up = updater(metadata_dir, metadata_url, target_dir, target_base_url)
    out: list[Downloaded] = []
    try:
        for name in target_names:
            info = up.get_targetinfo(name)
            if info is None:
                raise TufUpdateError(f"target {name!r} is not in the repository's metadata")
            cached = up.find_cached_target(info)
            path = cached or up.download_target(info)
            out.append(Downloaded(name, Path(path), info.length, cached is not None))
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, tuf_errors.StorageError) as e:
        raise translate(e) from e
    return out
