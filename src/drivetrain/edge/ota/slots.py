"""An ECU with A/B slots: install into the idle slot, boot it, keep it only if healthy.

The install is crash-safe by construction: the image is written and synced into the slot
that is not running, and only the small state file (written to a temporary name, synced,
renamed) says which slot boots. If the new image fails its health check after the switch,
the ECU switches back to the slot it came from (automatic rollback) and keeps its release
counter, so a failed build never raises the anti-rollback floor.

Secondaries do partial verification (Uptane §5.4.4.1): the ECU itself checks that the bytes
it is given have the length and SHA-256 the verified order names.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from drivetrain.core.errors import StorageError, VerificationError
from drivetrain.edge.ota.uptane import EcuIdentity, VerifiedInstall

Slot = Literal["a", "b"]
InstallResult = Literal["installed", "rolled_back", "unchanged"]


class ImageHashError(VerificationError):
    """Image bytes whose length or SHA-256 differ from the verified order."""


@dataclass(frozen=True, slots=True)
class HealthResult:
    """What the ECU's post-boot health check found."""

    healthy: bool
    detail: str


class HealthCheck(Protocol):
    """Boots ``image`` on ECU ``serial`` and says whether it runs well."""

    def __call__(self, serial: str, image: bytes) -> HealthResult: ...


@dataclass(frozen=True, slots=True)
class SlotImage:
    """The image in one slot."""

    target: str
    sha256: str
    length: int
    release_counter: int
    version: str


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    """The result of one install: installed, rolled back (with the health detail), or
    unchanged (the image already runs)."""

    ecu_serial: str
    result: InstallResult
    detail: str
    before: SlotImage | None
    after: SlotImage | None
    downloaded_bytes: int = 0
    via_delta: bool = False


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class AbEcu:
    """An A/B-slot ECU whose slots and state live under ``root``."""

    def __init__(self, serial: str, hardware_id: str, root: Path, health_check: HealthCheck):
        self.serial = serial
        self.hardware_id = hardware_id
        self.root = Path(root)
        self.health_check = health_check
        self.root.mkdir(parents=True, exist_ok=True)

    # --- state ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.root / "state.json").read_text())
            return state
        except FileNotFoundError:
            return {"active": "a", "slots": {"a": None, "b": None}, "release_counter": 0}
        except (OSError, ValueError) as e:
            raise StorageError(f"ECU {self.serial}: state file unreadable: {e}") from e

    def _save(self, state: dict[str, Any]) -> None:
        _write_atomic(self.root / "state.json", json.dumps(state, sort_keys=True).encode())

    @property
    def active_slot(self) -> Slot:
        slot: Slot = self._state()["active"]
        return slot

    def running(self) -> SlotImage | None:
        """The image in the active slot (None: factory state)."""
        state = self._state()
        entry = state["slots"][state["active"]]
        return None if entry is None else SlotImage(**entry)

    def identity(self) -> EcuIdentity:
        return EcuIdentity(self.serial, self.hardware_id, int(self._state()["release_counter"]))

    def image_bytes(self) -> bytes | None:
        """The bytes the active slot runs."""
        path = self.root / f"slot-{self.active_slot}.bin"
        return path.read_bytes() if path.exists() else None

    # --- install -------------------------------------------------------------------------
    def install(self, data: bytes, order: VerifiedInstall) -> InstallOutcome:
        """Write ``data`` into the idle slot, boot it, keep it if healthy, else roll back.

        Raises:
            ImageHashError: the bytes are not the ordered image (nothing is changed).
        """
        if len(data) != order.length or hashlib.sha256(data).hexdigest() != order.sha256:
            raise ImageHashError(f"ECU {self.serial}: image for {order.target} does not match "
                                 "its verified length and SHA-256; refused")
        state = self._state()
        before = self.running()
        if before is not None and before.sha256 == order.sha256:
            return InstallOutcome(self.serial, "unchanged", "already running", before, before)
        active: Slot = state["active"]
        idle: Slot = "b" if active == "a" else "a"
        _write_atomic(self.root / f"slot-{idle}.bin", data)
        image = SlotImage(order.target, order.sha256, order.length, order.release_counter,
                          order.version)
        state["slots"][idle] = asdict(image)
        state["active"] = idle  # the switch: from here the ECU boots the new slot
        self._save(state)
        health = self.health_check(self.serial, data)
        if not health.healthy:
            state["active"] = active  # automatic rollback to the slot it came from
            self._save(state)
            return InstallOutcome(self.serial, "rolled_back", health.detail, before, before)
        state["release_counter"] = max(int(state["release_counter"]), order.release_counter)
        self._save(state)
        return InstallOutcome(self.serial, "installed", health.detail, before, image)
