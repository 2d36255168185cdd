"""Signing keys of a TUF repository: generated, stored 0600, loaded as securesystemslib signers.

A key set keeps one folder per repository. The root keys live in ``offline/`` — the folder an
operator moves to removable media after signing root (Uptane §5.3: root keys stay offline);
the online roles (targets, snapshot, timestamp) live in ``online/`` for the server to re-sign.
A supplier's delegated targets role has its own keys and threshold in ``suppliers/<name>/``
(its own ``keys.json``), so revoking one supplier's keys touches no other role.
Each private key is a PEM (PKCS#8) file written with mode 0600; ``keys.json`` beside them
records the public keys and each role's threshold, so metadata can be built without opening
the private halves.
"""

from __future__ import annotations

import json
import os
import re
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
#: Supplier (delegated role) names: they become metadata file names (``N.<name>.json``).
SUPPLIER_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


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


def check_supplier_name(name: str) -> None:
    """Raises BadInputError unless ``name`` can name a supplier's delegated role."""
    if not SUPPLIER_NAME.fullmatch(name) or name in ROLES:
        raise BadInputError(f"supplier {name!r} is not valid; expected 1-32 lower-case "
                            "letters, digits and '-', starting with a letter or digit, and not "
                            f"a top-level role name {list(ROLES)}")


def _check_count(what: str, threshold: int, count: int) -> None:
    if not 1 <= count <= MAX_KEYS_PER_ROLE or not 1 <= threshold <= count:
        raise BadInputError(
            f"{what}: threshold {threshold} of {count} keys; expected "
            f"1 <= threshold <= keys <= {MAX_KEYS_PER_ROLE}"
        )


def _key_entry(key: Key) -> dict[str, object]:
    return key.to_dict() | {"keyid": key.keyid}


def _key_of(entry: Mapping[str, object]) -> Key:
    return SSlibKey.from_dict(str(entry["keyid"]),
                              {n: v for n, v in entry.items() if n != "keyid"})


def _write_index(folder: Path, index: Mapping[str, object]) -> None:
    tmp = folder / f".{_INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    os.replace(tmp, folder / _INDEX)


def _load_signer(pem: Path, key: Key) -> Signer:
    mode = stat.S_IMODE(pem.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"private key {pem} has mode {mode:o}; expected 600 (chmod 600 it)"
        )
    return Signer.from_priv_key_uri(f"file2:{pem}", key)


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
            _check_count(f"role {role}", threshold, count)
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
                entries.append(_key_entry(key))
            index[role] = {"threshold": threshold, "keys": entries}
        _write_index(self.path, index)
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
            keys = tuple(_key_of(k) for k in entry["keys"])
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
        if role not in ROLES:
            return self._supplier_signers(role)
        found: list[Signer] = []
        for key in self.roles()[role].keys:
            pem = self.path / _folder(role) / f"{key.keyid}.pem"
            if pem.is_file():
                found.append(_load_signer(pem, key))
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
        index[role] = {"threshold": 1, "keys": [_key_entry(key)]}
        _write_index(self.path, index)
        self._roles, self._signers = None, {}
        return key

    def public_signers_present(self, role: str) -> list[Key]:
        """The public keys of ``role`` whose private halves are on this host."""
        return [k for k in self.roles()[role].keys
                if (self.path / _folder(role) / f"{k.keyid}.pem").is_file()]

    # --- suppliers (delegated targets roles) ---------------------------------------------
    def _supplier_dir(self, name: str) -> Path:
        check_supplier_name(name)
        return self.path / "suppliers" / name

    def generate_supplier(self, name: str, threshold: int = 1, count: int = 1) -> RoleKeys:
        """Create ``count`` new Ed25519 keys for supplier ``name`` (``threshold`` of them sign
        its delegated role).

        Raises:
            BadInputError: a bad name or threshold, or the supplier's keys already exist.
        """
        folder = self._supplier_dir(name)
        _check_count(f"supplier {name}", threshold, count)
        if (folder / _INDEX).is_file():
            raise BadInputError(f"supplier {name!r} already has keys; revoke them with "
                                f"'drivetrain ota keys supplier rotate {name}'")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        entries = []
        for _ in range(count):
            signer = CryptoSigner.generate_ed25519()
            _write_private(folder / f"{signer.public_key.keyid}.pem", signer.private_bytes)
            entries.append(_key_entry(signer.public_key))
        _write_index(folder, {"threshold": threshold, "keys": entries})
        self._signers.pop(name, None)
        return self.supplier(name)

    def suppliers(self) -> list[str]:
        """The names of the suppliers with keys here, sorted."""
        base = self.path / "suppliers"
        return sorted(p.name for p in base.iterdir() if (p / _INDEX).is_file()) \
            if base.is_dir() else []

    def supplier(self, name: str) -> RoleKeys:
        """Supplier ``name``'s public keys and threshold.

        Raises:
            NotFoundError: no keys for that supplier (create them with 'ota keys supplier add').
        """
        folder = self._supplier_dir(name)
        try:
            index = json.loads((folder / _INDEX).read_text())
        except FileNotFoundError as e:
            raise NotFoundError(f"supplier {name!r} has no keys; create them with "
                                f"'drivetrain ota keys supplier add {name}'") from e
        except (OSError, ValueError) as e:
            raise ConfigurationError(f"OTA key index {folder / _INDEX} is unreadable: {e}") from e
        return RoleKeys(name, int(index["threshold"]),
                        tuple(_key_of(k) for k in index["keys"]))

    def _supplier_signers(self, name: str) -> list[Signer]:
        folder = self._supplier_dir(name)
        found = [_load_signer(folder / f"{key.keyid}.pem", key)
                 for key in self.supplier(name).keys if (folder / f"{key.keyid}.pem").is_file()]
        self._signers[name] = found
        return list(found)

    def replace_supplier_keys(self, name: str, threshold: int = 1, count: int = 1) -> RoleKeys:
        """Revoke supplier ``name``'s keys (their private files move to ``revoked/``) and
        generate new ones. The top-level targets role must then delegate to the new keys
        (:meth:`ImageRepository.add_supplier`) for vehicles to trust them.

        Raises:
            NotFoundError: the supplier has no keys. BadInputError: a bad threshold.
        """
        old = self.supplier(name)
        _check_count(f"supplier {name}", threshold, count)
        folder = self._supplier_dir(name)
        (self.path / "revoked").mkdir(mode=0o700, exist_ok=True)
        for key in old.keys:
            pem = folder / f"{key.keyid}.pem"
            if pem.is_file():
                os.replace(pem, self.path / "revoked" / pem.name)
        (folder / _INDEX).unlink()
        return self.generate_supplier(name, threshold, count)
