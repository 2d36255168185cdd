"""The vehicle's identity as the agent holds it: VIN, its own signing key, the cloud key it obeys.

The agent reads the credential file that ``drivetrain fleet provision`` writes (JSON, mode
0600; the format is defined with the fleet registry). It is read here, in the edge package, so
that the agent does not depend on the cloud code it will run without.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.errors import BadInputError, ConfigurationError
from drivetrain.core.transport import validate_vin

CREDENTIAL_VERSION: Final = 1


@dataclass(frozen=True)
class VehicleIdentity:
    """Who the vehicle is, and whom it trusts."""

    vin: str
    signing_key: SigningKey
    cloud_key: VerifyKey
    region: str = ""
    model: str = ""
    tenant: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> VehicleIdentity:
        """Parse a credential document.

        Raises:
            BadInputError: a field missing or malformed (names it), a bad key, an invalid VIN.
        """
        if not isinstance(data, dict):
            raise BadInputError("vehicle credentials: expected a JSON object")
        if data.get("version") != CREDENTIAL_VERSION:
            raise BadInputError(
                f"vehicle credentials: version {data.get('version')!r}; "
                f"expected {CREDENTIAL_VERSION}"
            )
        for name in ("vin", "private_key_pem", "cloud_public_key"):
            if not isinstance(data.get(name), str):
                raise BadInputError(f"vehicle credentials: field {name!r} missing or not a string")
        try:
            vin = validate_vin(data["vin"])
        except BadInputError as e:
            raise BadInputError(f"vehicle credentials: field 'vin': {e}") from e
        return cls(
            vin=vin,
            signing_key=SigningKey.from_pem(data["private_key_pem"].encode("ascii")),
            cloud_key=VerifyKey.from_base64(data["cloud_public_key"]),
            region=str(data.get("region", "")),
            model=str(data.get("model", "")),
            tenant=str(data.get("tenant", "")),
        )

    @classmethod
    def read(cls, path: str | Path) -> VehicleIdentity:
        """Read a credential file.

        Raises:
            ConfigurationError: the file is missing, or readable by group/others (it holds the
                vehicle's private key).
            BadInputError: not JSON, or a malformed field.
        """
        path = Path(path)
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            raise ConfigurationError(f"vehicle credentials {path}: {e.strerror or e}") from e
        if stat.S_IMODE(mode) & 0o077:
            raise ConfigurationError(
                f"vehicle credentials {path} are readable by group/others; chmod 600 it"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadInputError(f"cannot read vehicle credentials {path}: {e}") from e
        return cls.from_dict(data)

    def __repr__(self) -> str:
        keys = f"key {self.signing_key.key_id}, cloud {self.cloud_key.key_id}"
        return f"VehicleIdentity({self.vin}, {keys})"
