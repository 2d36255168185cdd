"""Per-vehicle data keys of the encrypted lake, behind a small key-service interface.

Crypto-shredding (see crypto.py): every vehicle's rows are encrypted under a data key of its
own; destroying the key makes those rows unreadable wherever a copy of the files lies. A
:class:`KeyService` creates, hands out and destroys those keys per (tenant, vehicle
pseudonym). Each key has a random id (32 hex digits, saying nothing of the vehicle) that the
files name; a vehicle erased and seen again gets a new key under a new id.

:class:`LocalKeyService` is the default: a 256-bit master key in ``<keys>/master.key`` (0600)
wraps each data key with AES-GCM (the key id is the associated data, so a wrapped key cannot
be moved to another id), and the wrapped keys sit in one SQLite file, ``<keys>/lake_keys.sqlite``
(0600). Destroying is one DELETE: SQLite's ``secure_delete`` overwrites the freed bytes, and
the rollback journal (``journal_mode=TRUNCATE``, no WAL) is cut to zero length when the
transaction ends, so no copy of a destroyed key stays in the key file. A hosted key service
(a cloud KMS wrapping the data keys) implements the same protocol.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drivetrain.core.errors import StorageError
from drivetrain.core.private_files import PRIVATE_FILE_MODE, make_private_dir

#: Directory of the local key service under the data directory.
KEYS_DIR: Final = "keys"
MASTER_KEY_FILE: Final = "master.key"
KEYSTORE_FILE: Final = "lake_keys.sqlite"
#: Data keys are AES-128 (the Parquet default, AES-GCM); the master key AES-256.
DATA_KEY_BYTES: Final = 16
_MASTER_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_IN_CHUNK: Final = 500  # host parameters per IN (...) list
_BUSY_TIMEOUT_MS: Final = 60_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS data_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    vehicle TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    UNIQUE (tenant, vehicle)
);
"""


class KeyDestroyedError(StorageError):
    """The data key a file was written under is destroyed (its vehicle was erased)."""


class KeyService(Protocol):
    """Per-vehicle data keys: created on first use, destroyed on erasure."""

    def key_ids(self, tenant: str, vehicles: Collection[str]) -> dict[str, str]:
        """The key id of each of ``vehicles`` (pseudonyms) of ``tenant``, creating the keys
        that do not exist yet."""
        ...

    def data_key(self, key_id: str) -> bytes:
        """The data key ``key_id`` in the clear.

        Raises:
            KeyDestroyedError: the key was destroyed (or never existed).
        """
        ...

    def live(self, key_ids: Collection[str]) -> set[str]:
        """Which of ``key_ids`` still exist."""
        ...

    def destroy(self, tenant: str, vehicles: Collection[str]) -> int:
        """Destroy the keys of ``vehicles`` of ``tenant``; returns how many existed."""
        ...

    def close(self) -> None:
        """Release what the service holds open."""
        ...


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i:i + _IN_CHUNK]


def _load_master_key(path: Path) -> bytes:
    """The master key at ``path``, created (0600, written once, fsynced) when missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        pass
    else:
        try:
            os.write(fd, secrets.token_bytes(_MASTER_KEY_BYTES).hex().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    for _ in range(50):  # another process may be writing it this very moment
        text = path.read_text().strip()
        if len(text) == 2 * _MASTER_KEY_BYTES:
            return bytes.fromhex(text)
        time.sleep(0.01)
    raise StorageError(f"{path} holds no master key (expected {2 * _MASTER_KEY_BYTES} hex "
                       "digits); restore it from where it is kept safe")


class LocalKeyService:
    """The file-based key service under ``directory`` (default ``<data_dir>/keys``).

    Thread-safe (one connection behind a lock); processes share it through SQLite locking.

    Raises:
        StorageError: the directory, master key or key file cannot be opened.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}
        try:
            make_private_dir(self.directory)
            self._master = AESGCM(_load_master_key(self.directory / MASTER_KEY_FILE))
            path = self.directory / KEYSTORE_FILE
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=_BUSY_TIMEOUT_MS / 1000)
            self._db.execute("PRAGMA journal_mode = TRUNCATE")
            self._db.execute("PRAGMA secure_delete = ON")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StorageError(f"cannot open the lake key store in {self.directory}: {e}") from e

    def close(self) -> None:
        """Close the key file."""
        with self._lock:
            self._db.close()
            self._cache.clear()

    def _wrap(self, key_id: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, key, key_id.encode())

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        try:
            return self._master.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:],
                                        key_id.encode())
        except InvalidTag as e:
            raise StorageError(f"data key {key_id} does not open with the master key in "
                               f"{self.directory} (a different master key?)") from e

    def _select(self, sql: str, values: list[str], *head: object) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []
        for chunk in _chunks(values):
            marks = ", ".join("?" * len(chunk))
            rows.extend(self._db.execute(sql.format(marks), (*head, *chunk)).fetchall())
        return rows

    def key_ids(self, tenant: str, vehicles: Collection[str]) -> dict[str, str]:
        wanted = sorted(set(vehicles))
        try:
            with self._lock:
                found: Mapping[str, str] = dict(self._select(  # type: ignore[arg-type]
                    "SELECT vehicle, key_id FROM data_keys WHERE tenant = ? AND vehicle IN ({})",
                    wanted, tenant))
                missing = [v for v in wanted if v not in found]
                if not missing:
                    return dict(found)
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    now = time.time_ns()
                    for vehicle in missing:
                        key_id = secrets.token_hex(16)
                        self._db.execute(
                            "INSERT INTO data_keys (key_id, tenant, vehicle, wrapped, created_ns)"
                            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, vehicle) DO NOTHING",
                            (key_id, tenant, vehicle,
                             self._wrap(key_id, secrets.token_bytes(DATA_KEY_BYTES)), now))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                # another process may have created some of them first: read back the winners
                return dict(self._select(  # type: ignore[arg-type]
                    "SELECT vehicle, key_id FROM data_keys WHERE tenant = ? AND vehicle IN ({})",
                    wanted, tenant))
        except sqlite3.Error as e:
            raise StorageError(f"cannot read or create lake data keys: {e}") from e

    def data_key(self, key_id: str) -> bytes:
        with self._lock:
            key = self._cache.get(key_id)
            if key is not None:
                return key
            try:
                row = self._db.execute("SELECT wrapped FROM data_keys WHERE key_id = ?",
                                       (key_id,)).fetchone()
            except sqlite3.Error as e:
                raise StorageError(f"cannot read lake data key {key_id}: {e}") from e
            if row is None:
                raise KeyDestroyedError(f"lake data key {key_id} is destroyed (erased vehicle)")
            key = self._cache[key_id] = self._unwrap(key_id, row[0])
            return key

    def live(self, key_ids: Collection[str]) -> set[str]:
        try:
            with self._lock:
                rows = self._select("SELECT key_id FROM data_keys WHERE key_id IN ({})",
                                    sorted(set(key_ids)))
        except sqlite3.Error as e:
            raise StorageError(f"cannot read lake data keys: {e}") from e
        return {str(r[0]) for r in rows}

    def destroy(self, tenant: str, vehicles: Collection[str]) -> int:
        wanted = sorted(set(vehicles))
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    gone = [str(r[0]) for r in self._select(
                        "DELETE FROM data_keys WHERE tenant = ? AND vehicle IN ({}) "
                        "RETURNING key_id", wanted, tenant)]
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                for key_id in gone:
                    self._cache.pop(key_id, None)
        except sqlite3.Error as e:
            raise StorageError(f"cannot destroy lake data keys: {e}") from e
        return len(gone)
