"""Uptane full verification on the primary ECU: the Director's orders checked against the
Image repository (Uptane standard §5.4.4.2 "full verification").

Pure: takes the Director's verified targets, a lookup into the Image repository's verified
targets, and the vehicle's own ECU inventory; returns what each ECU must install or raises
the named refusal. The TUF checks of each repository (signatures, thresholds, versions,
expiry) are done before by python-tuf's ngclient; this adds the Uptane rules on top:

1. every Director target names ECUs of this vehicle, each at most once, with the ECU's own
   hardware id (a Director cannot aim an image at hardware it was not built for);
2. the Image repository signs a target of the same name, with the same length and the same
   hashes (every hash the Director gives must match, and at least one must be given);
3. the image is built for that hardware id and its release counter equals the Director's and
   is not below the one the ECU runs (rollback);
4. an image a supplier's delegated role signs is for hardware the delegation names, when it
   names any (:func:`check_delegated_hardware`): ngclient enforces the delegation's keys,
   threshold and paths, this adds its hardware ids, so a supplier cannot aim an image at
   another supplier's ECUs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuf.api.metadata import TargetFile, Targets

from drivetrain.core.errors import VerificationError
from drivetrain.core.ota_names import HARDWARE_IDS_FIELD


class UptaneVerificationError(VerificationError):
    """The Director's orders fail an Uptane rule; the message names the target and the rule."""


class DirectorImageMismatchError(UptaneVerificationError):
    """A Director target differs from the Image repository's (missing, length, hashes)."""


class EcuMismatchError(UptaneVerificationError):
    """A Director target names an ECU this vehicle lacks, twice, or with other hardware."""


class DelegationHardwareError(UptaneVerificationError):
    """A supplier's delegated role signs an image for hardware its delegation does not name."""


class ImageRollbackError(UptaneVerificationError):
    """An image whose release counter is below the one the ECU runs."""


@dataclass(frozen=True, slots=True)
class EcuIdentity:
    """An ECU as the vehicle knows it: serial, hardware id, installed release counter."""

    serial: str
    hardware_id: str
    release_counter: int


@dataclass(frozen=True, slots=True)
class VerifiedInstall:
    """An image an ECU must install, after full verification."""

    ecu_serial: str
    hardware_id: str
    target: str
    length: int
    sha256: str
    release_counter: int
    version: str


def _custom(target: TargetFile) -> Mapping[str, Any]:
    custom = target.unrecognized_fields.get("custom")
    return custom if isinstance(custom, Mapping) else {}


def _counter(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DirectorImageMismatchError(f"{where}: release_counter {value!r} is not a "
                                         "non-negative integer")
    return value


def full_verification(
    director: Targets,
    image_lookup: Callable[[str], TargetFile | None],
    ecus: Mapping[str, EcuIdentity],
) -> list[VerifiedInstall]:
    """The installs the Director orders, each checked against the Image repository.

    Args:
        director: the vehicle's Director targets (already TUF-verified).
        image_lookup: the Image repository's verified target for a name, or None.
        ecus: the vehicle's ECUs by serial.

    Raises:
        EcuMismatchError, DirectorImageMismatchError, ImageRollbackError: see the module doc.
    """
    installs: list[VerifiedInstall] = []
    claimed: set[str] = set()
    for name, ordered in sorted(director.targets.items()):
        custom = _custom(ordered)
        identifiers = custom.get("ecu_identifiers")
        if not isinstance(identifiers, Mapping) or not identifiers:
            raise EcuMismatchError(f"Director target {name} names no ECU")
        image = image_lookup(name)
        if image is None:
            raise DirectorImageMismatchError(
                f"Director target {name} is not signed by the Image repository")
        if image.length != ordered.length:
            raise DirectorImageMismatchError(
                f"Director target {name}: length {ordered.length} but the Image repository "
                f"signs {image.length}")
        if not ordered.hashes:
            raise DirectorImageMismatchError(f"Director target {name} gives no hash")
        for algorithm, digest in ordered.hashes.items():
            if image.hashes.get(algorithm) != digest:
                raise DirectorImageMismatchError(
                    f"Director target {name}: {algorithm} differs from the Image repository's")
        image_custom = _custom(image)
        image_hw = image_custom.get("hardware_id")
        image_counter = _counter(image_custom.get("release_counter", 0), f"image {name}")
        if "release_counter" in custom and _counter(
            custom["release_counter"], f"Director target {name}"
        ) != image_counter:
            raise DirectorImageMismatchError(
                f"Director target {name}: release counter {custom['release_counter']} but the "
                f"Image repository signs {image_counter}")
        for serial, ids in sorted(identifiers.items()):
            ecu = ecus.get(serial)
            if ecu is None:
                raise EcuMismatchError(f"Director target {name} names ECU {serial!r}, which "
                                       "this vehicle does not have")
            if serial in claimed:
                raise EcuMismatchError(f"Director names ECU {serial} in more than one target")
            claimed.add(serial)
            ordered_hw = ids.get("hardware_id") if isinstance(ids, Mapping) else None
            if ordered_hw != ecu.hardware_id or image_hw != ecu.hardware_id:
                raise EcuMismatchError(
                    f"Director target {name} for ECU {serial}: hardware {ordered_hw!r} "
                    f"(Image repository: {image_hw!r}) but the ECU is {ecu.hardware_id!r}")
            if image_counter < ecu.release_counter:
                raise ImageRollbackError(
                    f"image {name} has release counter {image_counter}; ECU {serial} runs "
                    f"{ecu.release_counter} (rollback refused)")
            installs.append(VerifiedInstall(
                serial, ecu.hardware_id, name, image.length, image.hashes.get("sha256", ""),
                image_counter, str(image_custom.get("version", ""))))
    return installs


def check_delegated_hardware(
    top: Targets, load_role: Callable[[str], Targets | None],
    installs: Sequence[VerifiedInstall],
) -> None:
    """Each install a supplier's delegated role signs is for hardware its delegation names.

    The signing role is found as a TUF client searches: the top-level targets first, then
    each delegated role whose paths cover the name, in order (one level of delegation).

    Args:
        top: the Image repository's top-level targets (already TUF-verified).
        load_role: a delegated role's verified targets, or None when the client has none.
        installs: what :func:`full_verification` returned.

    Raises:
        DelegationHardwareError: naming the image, the supplier and the hardware.
    """
    roles = [] if top.delegations is None or top.delegations.roles is None else \
        list(top.delegations.roles.values())
    for order in installs:
        if order.target in top.targets:
            continue
        for role in roles:
            if not role.is_delegated_path(order.target):
                continue
            signed = load_role(role.name)
            if signed is not None and order.target in signed.targets:
                allowed = role.unrecognized_fields.get(HARDWARE_IDS_FIELD) or []
                if allowed and order.hardware_id not in allowed:
                    raise DelegationHardwareError(
                        f"image {order.target} is signed by supplier {role.name}, delegated "
                        f"for hardware {list(allowed)}, not {order.hardware_id!r} (ECU "
                        f"{order.ecu_serial})")
                break
            if role.terminating:
                break
