"""Provisioning: new vehicle identities (VIN + key pair) and the cloud's own signing key.

A provisioned vehicle gets a *credential file* (JSON, mode 0600) holding its VIN, its private
key, the cloud's public key (the only key whose downlink messages it obeys) and its region;
the registry keeps only the public half. In a real factory the private key is generated in the
vehicle's secure element and only the public key leaves it; the file form serves simulated
fleets and bench units.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from drivetrain.cloud.fleet.service import Vehicle, register_vehicle
from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.errors import BadInputError, ConfigurationError
from drivetrain.core.vin import VIN_CHARACTERS, vin_check_digit

#: World manufacturer identifier used for simulated vehicles ("DT" + a free third character).
SIMULATED_WMI = "DTV"
CREDENTIAL_VERSION = 1


def generate_vin(rng: random.Random, wmi: str = SIMULATED_WMI) -> str:
    """A well-formed random VIN with a valid check digit (model year 2026 = 'T')."""
    body = wmi + "".join(rng.choice(VIN_CHARACTERS) for _ in range(5))
    rest = "T" + "".join(rng.choice(VIN_CHARACTERS) for _ in range(7))
    draft = body + "0" + rest
    return body + vin_check_digit(draft) + rest


@dataclass(frozen=True)
class VehicleCredentials:
    """What a vehicle holds: its identity, its private key and the cloud key it trusts."""

    vin: str
    model: str
    region: str
    tenant: str
    signing_key: SigningKey
    cloud_key: VerifyKey

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CREDENTIAL_VERSION,
            "vin": self.vin,
            "model": self.model,
            "region": self.region,
            "tenant": self.tenant,
            "private_key_pem": self.signing_key.to_pem().decode("ascii"),
            "cloud_public_key": self.cloud_key.to_base64(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VehicleCredentials:
        """Parse a credential document.

        Raises:
            BadInputError: a field missing or of the wrong form (names the field).
        """
        for name in ("vin", "model", "region", "tenant", "private_key_pem", "cloud_public_key"):
            if not isinstance(data.get(name), str):
                raise BadInputError(f"vehicle credentials: field {name!r} missing or not a string")
        if data.get("version") != CREDENTIAL_VERSION:
            raise BadInputError(
                f"vehicle credentials: version {data.get('version')!r}; expected {CREDENTIAL_VERSION}"
            )
        return cls(
            vin=data["vin"], model=data["model"], region=data["region"], tenant=data["tenant"],
            signing_key=SigningKey.from_pem(data["private_key_pem"].encode("ascii")),
            cloud_key=VerifyKey.from_base64(data["cloud_public_key"]),
        )

    def write(self, path: Path) -> None:
        """Write the credential file with mode 0600 (created that way, never world-readable)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self.to_dict(), out, indent=2)

    @classmethod
    def read(cls, path: Path) -> VehicleCredentials:
        """Read a credential file written by ``write``.

        Raises:
            BadInputError: unreadable JSON or a malformed field.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise BadInputError(f"cannot read vehicle credentials {path}: {e}") from e
        if not isinstance(data, dict):
            raise BadInputError(f"vehicle credentials {path}: expected a JSON object")
        return cls.from_dict(data)


def provision_vehicle(
    session: Session,
    *,
    tenant: str,
    model: str,
    region: str,
    cloud_key: VerifyKey,
    actor: str,
    vin: str | None = None,
    owner: str | None = None,
    rng: random.Random | None = None,
    signing_key: SigningKey | None = None,
) -> tuple[Vehicle, VehicleCredentials]:
    """Create a key pair (and a VIN unless given), register the vehicle, return its credentials.

    Raises:
        BadInputError, NotFoundError, ConflictError: as ``register_vehicle``.
    """
    rng = rng or random.Random()
    vin = vin or generate_vin(rng)
    signing_key = signing_key or SigningKey.generate()
    vehicle = register_vehicle(
        session, vin=vin, tenant=tenant, model=model, region=region,
        verify_key=signing_key.verify_key, owner=owner, actor=actor,
    )
    credentials = VehicleCredentials(
        vin=vin, model=model, region=vehicle.region, tenant=tenant,
        signing_key=signing_key, cloud_key=cloud_key,
    )
    return vehicle, credentials


def load_or_create_cloud_key(path: Path, *, create: bool) -> SigningKey:
    """The cloud's downlink signing key from ``path`` (PEM), created there (0600) if allowed.

    Raises:
        ConfigurationError: the file is missing and ``create`` is False (production must be
            given its key), or it is readable by group/others.
    """
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise ConfigurationError(
                f"cloud signing key {path} is readable by group/others; chmod 600 it"
            )
        return SigningKey.from_pem(path.read_bytes())
    if not create:
        raise ConfigurationError(
            f"cloud signing key {path} does not exist; create one with "
            "`drivetrain fleet cloud-key` or point DRIVETRAIN_CLOUD_KEY_FILE at it"
        )
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.to_pem())
    return key
