"""The Uptane Image repository: every signed artifact a vehicle may install.

An image is any artifact on the same signed path — ECU firmware, an in-vehicle app, a decoder
manifest, a trained model. Each carries, in its TUF ``custom`` field, the hardware id it is
built for, its release counter (Uptane's anti-rollback counter: a vehicle refuses an image
whose counter is below the installed one) and a human version.

**Supplier delegations** (TUF delegated targets, spec §4.5): the top-level targets role may
delegate to a supplier's role — its own keys and threshold, the path patterns it may sign
(``acme/*``), optionally the hardware ids it builds for — and an image published for that
supplier is signed into the supplier's role with the supplier's keys. A vehicle's TUF client
follows the delegation and refuses a target outside the supplier's paths or signed by other
keys; the platform refuses to sign one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tuf.api.metadata import DelegatedRole, TargetFile

from drivetrain.cloud.ota.keys import KeyStore, check_supplier_name
from drivetrain.cloud.ota.repository import Expiry, TufRepository
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.ota_names import HARDWARE_IDS_FIELD, delta_name

HARDWARE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_RELEASE_COUNTER: Final = 2**31 - 1
IMAGE_KINDS: Final = ("firmware", "app", "decoder_manifest", "model", "delta")
MAX_PATH_PATTERNS: Final = 16
PATH_PATTERN: Final = re.compile(r"[A-Za-z0-9_.*+-]{1,128}(/[A-Za-z0-9_.*+-]{1,128}){0,7}")


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
    #: the supplier whose delegated role signs it ("": the top-level targets role)
    supplier: str = ""

    @classmethod
    def of(cls, target: TargetFile, role: str = "targets") -> ImageInfo:
        custom = target.custom
        return cls(target.path, target.length, target.hashes["sha256"],
                   str(custom.get("hardware_id", "")), int(custom.get("release_counter", 0)),
                   str(custom.get("version", "")), str(custom.get("kind", "firmware")),
                   "" if role == "targets" else role)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "length": self.length, "sha256": self.sha256,
                "hardware_id": self.hardware_id, "release_counter": self.release_counter,
                "version": self.version, "kind": self.kind, "supplier": self.supplier}


@dataclass(frozen=True, slots=True)
class SupplierInfo:
    """A supplier's delegation: its keys, threshold, path patterns and hardware ids."""

    name: str
    keyids: tuple[str, ...]
    threshold: int
    paths: tuple[str, ...]
    hardware_ids: tuple[str, ...]

    @classmethod
    def of(cls, role: DelegatedRole) -> SupplierInfo:
        hardware = role.unrecognized_fields.get(HARDWARE_IDS_FIELD) or []
        return cls(role.name, tuple(role.keyids), role.threshold, tuple(role.paths or ()),
                   tuple(str(h) for h in hardware))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keyids": list(self.keyids), "threshold": self.threshold,
                "paths": list(self.paths), "hardware_ids": list(self.hardware_ids)}


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

    def add_supplier(
        self, name: str, *, paths: Sequence[str] = (), hardware_ids: Sequence[str] = (),
        now: datetime | None = None,
    ) -> SupplierInfo:
        """Delegate to supplier ``name`` (whose keys must exist in the key store: see
        :meth:`KeyStore.generate_supplier`): its role may sign the targets matching ``paths``
        (TUF path patterns, ``*`` within one path segment), by default ``<name>/<hw>/*`` for
        each of ``hardware_ids``, else ``<name>/*`` and ``<name>/*/*``; with ``hardware_ids``
        only images built for those. Called again it replaces the delegation (new keys after
        a rotation, other paths); the supplier's images are re-signed with its current keys.

        Raises:
            BadInputError: a bad name, path pattern or hardware id.
            NotFoundError: the supplier has no keys.
        """
        check_supplier_name(name)
        for hw in hardware_ids:
            check_image_fields(hw, 0, "-", "firmware")
        if not paths:
            paths = [f"{name}/{hw}/*" for hw in hardware_ids] or [f"{name}/*", f"{name}/*/*"]
        if len(paths) > MAX_PATH_PATTERNS:
            raise BadInputError(f"paths: {len(paths)} given; at most {MAX_PATH_PATTERNS}")
        for pattern in paths:
            if not PATH_PATTERN.fullmatch(pattern) or ".." in pattern.split("/"):
                raise BadInputError(f"path pattern {pattern!r} is not valid; expected a "
                                    "relative path whose segments may hold '*' (e.g. "
                                    f"'{name}/*')")
        keys = self.repo.keys.supplier(name)
        extra = {HARDWARE_IDS_FIELD: sorted(set(hardware_ids))} if hardware_ids else None
        role = DelegatedRole(name, [k.keyid for k in keys.keys], keys.threshold,
                             terminating=True, paths=list(dict.fromkeys(paths)),
                             unrecognized_fields=extra)
        self.repo.delegate(role, keys.keys, now=now)
        return SupplierInfo.of(role)

    def rotate_supplier(self, name: str, threshold: int = 1, count: int = 1, *,
                        now: datetime | None = None) -> SupplierInfo:
        """Revoke supplier ``name``'s keys, make ``count`` new ones and delegate to them with
        the same paths and hardware ids; its images are re-signed with the new keys, and a
        vehicle refuses the role signed with the old ones from then on.

        Raises:
            NotFoundError: no delegation to ``name``. BadInputError: a bad threshold.
        """
        current = SupplierInfo.of(self.repo.delegation(name))
        self.repo.keys.replace_supplier_keys(name, threshold, count)
        return self.add_supplier(name, paths=current.paths, hardware_ids=current.hardware_ids,
                                 now=now)

    def suppliers(self) -> list[SupplierInfo]:
        """Every supplier the top-level targets delegate to, in order of precedence."""
        return [SupplierInfo.of(r) for r in self.repo.delegations()]

    def check_supplier_image(self, supplier: str, name: str, hardware_id: str) -> None:
        """Raises BadInputError unless supplier's delegation covers ``name`` and
        ``hardware_id``; NotFoundError when there is no such supplier."""
        info = SupplierInfo.of(self.repo.delegation(supplier))
        if not self.repo.delegation(supplier).is_delegated_path(name):
            raise BadInputError(f"image {name!r} is outside supplier {supplier}'s delegated "
                                f"paths {list(info.paths)}")
        if info.hardware_ids and hardware_id not in info.hardware_ids:
            raise BadInputError(f"hardware_id {hardware_id!r} is not one supplier {supplier} "
                                f"is delegated for; expected one of {list(info.hardware_ids)}")

    def add_image(
        self, name: str, data: bytes, *, hardware_id: str, release_counter: int, version: str,
        kind: str = "firmware", supplier: str | None = None, now: datetime | None = None,
    ) -> ImageInfo:
        """Store and publish an image (a new targets, snapshot and timestamp version): into
        the top-level targets role, or with ``supplier`` into that supplier's delegated role,
        signed with the supplier's keys.

        Raises:
            BadInputError: a bad name or field, a name or hardware id outside the supplier's
                delegation, or ``name`` already published with other content (an image name
                is immutable: publish a new name for a new build).
            NotFoundError: no delegation to ``supplier``.
        """
        check_image_fields(hardware_id, release_counter, version, kind)
        if supplier is not None:
            self.check_supplier_image(supplier, name, hardware_id)
        existing = self.repo.find(name)
        target = self.repo.store_image(name, data, {
            "hardware_id": hardware_id, "release_counter": release_counter,
            "version": version, "kind": kind,
        })
        if existing is not None:
            entry, role = existing
            if entry.hashes != target.hashes or entry.custom != target.custom or \
                    role != (supplier or "targets"):
                raise BadInputError(f"image {name!r} is already published with other content "
                                    "or attributes; publish the new build under a new name")
            return ImageInfo.of(entry, role)
        self.repo.publish({name: target}, now=now, role=supplier or "targets")
        return ImageInfo.of(target, supplier or "targets")

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
        """Every published image (top-level and suppliers'), by name."""
        targets = self.repo.all_targets()
        return [ImageInfo.of(*targets[n]) for n in sorted(targets)]

    def info(self, name: str) -> ImageInfo:
        """The published image ``name`` with the supplier that signs it.

        Raises:
            NotFoundError: no such image.
        """
        return ImageInfo.of(*self._find(name))

    def image(self, name: str) -> TargetFile:
        """The target entry of ``name`` (top-level or a supplier's).

        Raises:
            NotFoundError: no such image.
        """
        return self._find(name)[0]

    def _find(self, name: str) -> tuple[TargetFile, str]:
        found = self.repo.find(name)
        if found is None:
            raise NotFoundError(f"image {name!r} is not in the Image repository")
        return found
