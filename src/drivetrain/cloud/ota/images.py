"""The Uptane Image repository: every signed artifact a vehicle may install.

An image is any artifact on the same signed path — ECU firmware, an in-vehicle app, a decoder
manifest, a trained model. Each carries, in its TUF ``custom`` field, the hardware id it is
built for, its release counter (Uptane's anti-rollback counter: a vehicle refuses an image
whose counter is below the installed one) and a human version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tuf.api.metadata import TargetFile

from drivetrain.cloud.ota.keys import KeyStore
from drivetrain.cloud.ota.repository import Expiry, TufRepository
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.ota_names import delta_name

HARDWARE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_RELEASE_COUNTER: Final = 2**31 - 1
IMAGE_KINDS: Final = ("firmware", "app", "decoder_manifest", "model", "delta")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """A published image: target name, length, sha256, and its Uptane attributes."""

    name: str
    length: int
    sha256: str
    hardware_id: str
    release_counter: int
    version: str
    kind: str

    @classmethod
    def of(cls, target: TargetFile) -> ImageInfo:
        custom = target.custom
        return cls(target.path, target.length, target.hashes["sha256"],
                   str(custom.get("hardware_id", "")), int(custom.get("release_counter", 0)),
                   str(custom.get("version", "")), str(custom.get("kind", "firmware")))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "length": self.length, "sha256": self.sha256,
                "hardware_id": self.hardware_id, "release_counter": self.release_counter,
                "version": self.version, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class DeltaInfo:
    """A published delta: from which image to which, its name and the bytes it saves."""

    source: str
    target: str
    name: str
    delta_bytes: int
    full_bytes: int

    @property
    def bytes_saved(self) -> int:
        return self.full_bytes - self.delta_bytes


def check_image_fields(hardware_id: str, release_counter: int, version: str, kind: str) -> None:
    """Raises BadInputError naming the first bad field."""
    if not HARDWARE_ID.fullmatch(hardware_id):
        raise BadInputError(f"hardware_id {hardware_id!r} is not valid; expected 1-64 letters, "
                            "digits, '_', '.', ':', '-' (e.g. 'bms-ctrl-v2')")
    if isinstance(release_counter, bool) or not 0 <= release_counter <= MAX_RELEASE_COUNTER:
        raise BadInputError(f"release_counter {release_counter!r}; expected an integer "
                            f"0..{MAX_RELEASE_COUNTER}")
    if not 1 <= len(version) <= 64:
        raise BadInputError(f"version {version!r}; expected 1-64 characters")
    if kind not in IMAGE_KINDS:
        raise BadInputError(f"kind {kind!r}; expected one of {list(IMAGE_KINDS)}")


class ImageRepository:
    """The Image repository under ``path`` with the keys in ``keys``."""

    def __init__(self, path: Path, keys: KeyStore, expiry: Expiry | None = None) -> None:
        self.repo = TufRepository(Path(path), keys, expiry or Expiry())

    @classmethod
    def create(cls, path: Path, keys: KeyStore, *, expiry: Expiry | None = None,
               now: datetime | None = None) -> ImageRepository:
        TufRepository.create(path, keys, expiry=expiry, now=now)
        return cls(path, keys, expiry)

    def add_image(
        self, name: str, data: bytes, *, hardware_id: str, release_counter: int, version: str,
        kind: str = "firmware", now: datetime | None = None,
    ) -> ImageInfo:
        """Store and publish an image (a new targets, snapshot and timestamp version).

        Raises:
            BadInputError: a bad name or field, or ``name`` already published with other
                content (an image name is immutable: publish a new name for a new build).
        """
        check_image_fields(hardware_id, release_counter, version, kind)
        existing = self.repo.target(name)
        target = self.repo.store_image(name, data, {
            "hardware_id": hardware_id, "release_counter": release_counter,
            "version": version, "kind": kind,
        })
        if existing is not None:
            if existing.hashes != target.hashes or existing.custom != target.custom:
                raise BadInputError(f"image {name!r} is already published with other content "
                                    "or attributes; publish the new build under a new name")
            return ImageInfo.of(existing)
        self.repo.publish({name: target}, now=now)
        return ImageInfo.of(target)

    def add_delta(self, source: str, target: str, *, now: datetime | None = None) -> DeltaInfo:
        """Publish a bsdiff4 delta that turns image ``source`` into image ``target`` (same
        hardware id), under :func:`delta_name`. A vehicle running ``source`` downloads the
        delta instead of the full image, rebuilds ``target`` and checks its hash; the full
        image stays published as the fallback.

        Raises:
            NotFoundError: either image is not published.
            BadInputError: the two images are for different hardware, or the delta would not
                be smaller than the full image.
        """
        import bsdiff4

        old, new = self.image(source), self.image(target)
        old_info, new_info = ImageInfo.of(old), ImageInfo.of(new)
        if old_info.hardware_id != new_info.hardware_id:
            raise BadInputError(f"delta {source} → {target}: hardware {old_info.hardware_id!r} "
                                f"≠ {new_info.hardware_id!r}")
        patch = bsdiff4.diff(self.repo.image_bytes(old), self.repo.image_bytes(new))
        if len(patch) >= new.length:
            raise BadInputError(f"delta {source} → {target} is {len(patch):,} bytes, not "
                                f"smaller than the full image ({new.length:,})")
        name = delta_name(target, old.hashes["sha256"])
        if self.repo.target(name) is None:
            entry = self.repo.store_image(name, patch, {
                "hardware_id": new_info.hardware_id, "release_counter": new_info.release_counter,
                "version": new_info.version, "kind": "delta", "delta_of": target,
                "source_sha256": old.hashes["sha256"]})
            self.repo.publish({name: entry}, now=now)
        return DeltaInfo(source, target, name, len(patch), new.length)

    def images(self) -> list[ImageInfo]:
        """Every published image, by name."""
        targets = self.repo.targets().signed.targets
        return [ImageInfo.of(targets[n]) for n in sorted(targets)]

    def image(self, name: str) -> TargetFile:
        """The target entry of ``name``.

        Raises:
            NotFoundError: no such image.
        """
        target = self.repo.target(name)
        if target is None:
            raise NotFoundError(f"image {name!r} is not in the Image repository")
        return target
