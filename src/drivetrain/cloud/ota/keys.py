"""Signing keys of a TUF repository: generated, stored 0600, loaded as securesystemslib signers.

A key set keeps one folder per repository. The root keys live in ``offline/`` — the folder an
operator moves to removable media after signing root (Uptane §5.3: root keys stay offline);
the online roles (targets, snapshot, timestamp) live in ``online/`` for the server to re-sign.
Each private key is a PEM (PKCS#8) file written with mode 0600; ``keys.json`` beside them
records the public keys and each role's threshold, so metadata can be built without opening
the private halves.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey

from drivetrain.core.errors import BadInputError, ConfigurationError, NotFoundError

Role = Literal["root", "targets", "snapshot", "timestamp"]
ROLES: Final[tuple[Role, ...]] = ("root", "targets", "snapshot", "timestamp")
#: Roles whose keys stay offline (moved off the server once root is signed).
OFFLINE_ROLES: Final[frozenset[str]] = frozenset({"root"})
MAX_KEYS_PER_ROLE: Final = 16
_INDEX: Final = "keys.json"


@dataclass(frozen=True, slots=True)
class RoleKeys:
    """The public keys of one role and how many of them must sign."""

    role: str
    threshold: int
    keys: tuple[Key, ...]


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never overwrite a key; the mode is set at creation so it is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _folder(role: str) -> str:
    return "offline" if role in OFFLINE_ROLES else "online"


class KeyStore:
    """The keys of one repository under ``path`` (created by :meth:`generate`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # loaded once per store: a Director signs for many vehicles in a row
        self._roles: dict[str, RoleKeys] | None = None
        self._signers: dict[str, list[Signer]] = {}

    @property
    def exists(self) -> bool:
        return (self.path / _INDEX).is_file()

    def generate(self, thresholds: Mapping[str, tuple[int, int]]) -> dict[str, RoleKeys]:
        """Create new Ed25519 keys: ``thresholds[role] = (threshold, count)``.

        Raises:
            BadInputError: an unknown role, a threshold outside 1..count, or keys already
                exist here (they are never overwritten).
        """
        if self.exists:
            raise BadInputError(f"keys already exist in {self.path}; refusing to overwrite them")
        for role, (threshold, count) in thresholds.items():
            if role not in ROLES:
                raise BadInputError(f"role {role!r} is unknown; expected one of {list(ROLES)}")
            if not 1 <= count <= MAX_KEYS_PER_ROLE or not 1 <= threshold <= count:
                raise BadInputError(
                    f"role {role}: threshold {threshold} of {count} keys; expected "
                    f"1 <= threshold <= keys <= {MAX_KEYS_PER_ROLE}"
                )
        index: dict[str, dict[str, object]] = {}
        for sub in ("offline", "online"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        for role in ROLES:
            threshold, count = thresholds.get(role, (1, 1))
            entries = []
            for _ in range(count):
                signer = CryptoSigner.generate_ed25519()
                key = signer.public_key
                _write_private(self.path / _folder(role) / f"{key.keyid}.pem",
                               signer.private_bytes)
                entries.append(key.to_dict() | {"keyid": key.keyid})
            index[role] = {"threshold": threshold, "keys": entries}
        tmp = self.path / f".{_INDEX}.tmp"
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, self.path / _INDEX)
        self._roles, self._signers = None, {}
        return self.roles()

    def roles(self) -> dict[str, RoleKeys]:
        """Every role's public keys and threshold.

        Raises:
            NotFoundError: no key set here.
            ConfigurationError: the index is unreadable.
        """
        if self._roles is not None:
            return dict(self._roles)
        try:
            index = json.loads((self.path / _INDEX).read_text())
        except FileNotFoundError as e:
            raise NotFoundError(
                f"no OTA keys in {self.path}; create them with 'drivetrain ota keys init'"
            ) from e
        except (OSError, ValueError) as e:
            raise ConfigurationError(f"OTA key index {self.path / _INDEX} is unreadable: {e}") from e
        out: dict[str, RoleKeys] = {}
        for role in ROLES:
            entry = index[role]
            keys = tuple(
                SSlibKey.from_dict(k["keyid"], {n: v for n, v in k.items() if n != "keyid"})
                for k in entry["keys"]
            )
            out[role] = RoleKeys(role, int(entry["threshold"]), keys)
        self._roles = out
        return dict(out)

    def signers(self, role: str) -> list[Signer]:
        """The signers of ``role`` whose private keys are present here (the offline root keys
        are absent once moved away).

        Raises:
            ConfigurationError: a private key file readable by others than its owner.
        """
        if role in self._signers:
            return list(self._signers[role])
        found: list[Signer] = []
        for key in self.roles()[role].keys:
            pem = self.path / _folder(role) / f"{key.keyid}.pem"
            if not pem.is_file():
                continue
            mode = stat.S_IMODE(pem.stat().st_mode)
            if mode & 0o077:
                raise ConfigurationError(
                    f"private key {pem} has mode {mode:o}; expected 600 (chmod 600 it)"
                )
            found.append(Signer.from_priv_key_uri(f"file2:{pem}", key))
        self._signers[role] = found
        return list(found)

    def replace_key(self, role: str) -> Key:
        """Revoke ``role``'s keys and generate one new key for it (threshold 1): after a key
        is lost or compromised. The old private keys move to ``revoked/``. A new root version
        must then be signed (:meth:`TufRepository.rotate_keys`) for vehicles to trust it.

        Raises:
            BadInputError: ``role`` is root (its rotation needs the old and new root
                thresholds together) or unknown.
        """
        if role not in ROLES or role == "root":
            raise BadInputError(f"role {role!r}: only targets, snapshot and timestamp keys are "
                                "replaced this way")
        index = json.loads((self.path / _INDEX).read_text())
        (self.path / "revoked").mkdir(mode=0o700, exist_ok=True)
        for entry in index[role]["keys"]:
            pem = self.path / _folder(role) / f"{entry['keyid']}.pem"
            if pem.is_file():
                os.replace(pem, self.path / "revoked" / pem.name)
        signer = CryptoSigner.generate_ed25519()
        key = signer.public_key
        _write_private(self.path / _folder(role) / f"{key.keyid}.pem", signer.private_bytes)
        index[role] = {"threshold": 1, "keys": [key.to_dict() | {"keyid": key.keyid}]}
        tmp = self.path / f".{_INDEX}.tmp"
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, self.path / _INDEX)
        self._roles, self._signers = None, {}
        return key

    def public_signers_present(self, role: str) -> list[Key]:
        """The public keys of ``role`` whose private halves are on this host."""
        return [k for k in self.roles()[role].keys
                if (self.path / _folder(role) / f"{k.keyid}.pem").is_file()]
