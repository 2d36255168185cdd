"""The Uptane Director: per-vehicle targets metadata naming each ECU's image.

The Director signs, for each vehicle, a TUF repository whose targets role lists exactly the
images that vehicle's ECUs must install now (Uptane §5.2.2). Each entry repeats the Image
repository's length and hashes and names the ECUs by serial and hardware id in its ``custom``
field; the vehicle checks every entry against the Image repository (full verification), so a
compromised Director alone cannot install arbitrary software.

All vehicles share the Director's root (its keys are online: the Director signs as
assignments change); each vehicle's repository lives in ``vehicles/<VIN>/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from tuf.api.metadata import TargetFile

from drivetrain.cloud.ota.images import HARDWARE_ID, ImageInfo, ImageRepository
from drivetrain.cloud.ota.keys import KeyStore
from drivetrain.cloud.ota.repository import Expiry, TufRepository
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.vin import is_vin

ECU_SERIAL_MAX: Final = 64


@dataclass(frozen=True, slots=True)
class EcuAssignment:
    """One ECU of a vehicle and the image it must run."""

    ecu_serial: str
    hardware_id: str
    image: str


class Director:
    """The Director repository under ``path``."""

    def __init__(self, path: Path, keys: KeyStore, expiry: Expiry | None = None) -> None:
        self.path = Path(path)
        self.keys = keys
        self.expiry = expiry or Expiry()

    @classmethod
    def create(cls, path: Path, keys: KeyStore, *, expiry: Expiry | None = None,
               now: datetime | None = None) -> Director:
        """Create the Director's shared root (in ``root/``)."""
        TufRepository.create(Path(path) / "root", keys, expiry=expiry, now=now)
        return cls(path, keys, expiry)

    def root_bytes(self) -> bytes:
        """The Director's signed root: what a vehicle is provisioned with."""
        return TufRepository(self.path / "root", self.keys, self.expiry).root_bytes()

    def vehicle(self, vin: str) -> TufRepository:
        """The repository of ``vin`` (may not exist yet)."""
        if not is_vin(vin):
            raise BadInputError(f"VIN {vin!r} is not valid; expected 17 characters")
        return TufRepository(self.path / "vehicles" / vin, self.keys, self.expiry)

    def enrol(self, vin: str, *, now: datetime | None = None) -> TufRepository:
        """Create ``vin``'s repository (empty targets: nothing to install) if absent; a vehicle
        provisioned with the Director's root can then poll it. Returns the repository."""
        repo = self.vehicle(vin)
        if not (repo.metadata_dir / "timestamp.json").exists():
            TufRepository.create(repo.path, self.keys, expiry=self.expiry,
                                 root_bytes=self.root_bytes(), now=now)
        return repo

    def assign(
        self, vin: str, assignments: Sequence[EcuAssignment], images: ImageRepository, *,
        now: datetime | None = None,
    ) -> int:
        """Sign new targets metadata for ``vin`` naming exactly ``assignments``.

        Every image must be in the Image repository and built for the ECU's hardware id.
        Returns the vehicle's new Director targets version.

        Raises:
            BadInputError: a bad VIN, serial or hardware id, an ECU named twice, or an image
                built for other hardware.
            NotFoundError: an image not in the Image repository.
        """
        return self.assign_many({vin: assignments}, images, now=now)[vin]

    def assign_many(
        self, orders: Mapping[str, Sequence[EcuAssignment]], images: ImageRepository, *,
        now: datetime | None = None,
    ) -> dict[str, int]:
        """:meth:`assign` for many vehicles: images are looked up and keys loaded once.
        Every order is checked before anything is signed. Returns each VIN's new version."""
        cache: dict[str, TargetFile] = {}

        def image_of(name: str) -> TargetFile:
            if name not in cache:
                cache[name] = images.image(name)
            return cache[name]

        planned = {vin: self._entries(vin, a, image_of) for vin, a in orders.items()}
        root = self.root_bytes()
        versions: dict[str, int] = {}
        for vin, entries in planned.items():
            repo = self.vehicle(vin)
            repo.sync_each = False
            if (repo.metadata_dir / "timestamp.json").exists():
                versions[vin] = repo.publish(entries, now=now, replace=True)
            else:  # a first assignment creates the vehicle's repository with it: version 1
                TufRepository.create(repo.path, self.keys, expiry=self.expiry, root_bytes=root,
                                     now=now, initial=entries, sync_each=False)
                versions[vin] = 1
        # group commit: one sync for the batch. A crash before it can leave a vehicle's files
        # incomplete, which its client refuses (TUF verification) until the wave is re-signed.
        os.sync()
        return versions

    def _entries(self, vin: str, assignments: Sequence[EcuAssignment],
                 image_of: Callable[[str], TargetFile]) -> dict[str, TargetFile]:
        self.vehicle(vin)  # checks the VIN
        entries: dict[str, TargetFile] = {}
        seen: set[str] = set()
        for a in assignments:
            if not 1 <= len(a.ecu_serial) <= ECU_SERIAL_MAX or not a.ecu_serial.isprintable():
                raise BadInputError(f"ECU serial {a.ecu_serial!r}; expected 1-{ECU_SERIAL_MAX} "
                                    "printable characters")
            if not HARDWARE_ID.fullmatch(a.hardware_id):
                raise BadInputError(f"hardware_id {a.hardware_id!r} of ECU {a.ecu_serial} "
                                    "is not valid")
            if a.ecu_serial in seen:
                raise BadInputError(f"ECU {a.ecu_serial} is assigned twice")
            seen.add(a.ecu_serial)
            image = image_of(a.image)
            info = ImageInfo.of(image)
            if info.hardware_id != a.hardware_id:
                raise BadInputError(
                    f"image {a.image} is built for hardware {info.hardware_id!r}; ECU "
                    f"{a.ecu_serial} is {a.hardware_id!r}"
                )
            entry = entries.get(a.image)
            if entry is None:
                entry = TargetFile(image.length, dict(image.hashes), image.path,
                                   {"custom": {"hardware_id": info.hardware_id,
                                               "release_counter": info.release_counter,
                                               "ecu_identifiers": {}}})
                entries[a.image] = entry
            entry.custom["ecu_identifiers"][a.ecu_serial] = {"hardware_id": a.hardware_id}
        return entries

    def assignments(self, vin: str) -> list[EcuAssignment]:
        """What the Director currently tells ``vin`` to run.

        Raises:
            NotFoundError: the Director has never signed for ``vin``.
        """
        repo = self.vehicle(vin)
        try:
            targets = repo.targets().signed.targets
        except NotFoundError as e:
            raise NotFoundError(f"the Director has no metadata for vehicle {vin}") from e
        return [EcuAssignment(serial, ids["hardware_id"], name)
                for name, t in sorted(targets.items())
                for serial, ids in sorted(t.custom.get("ecu_identifiers", {}).items())]
