"""Crypto-shredding: the encrypted lake writes each vehicle's rows under the vehicle's own key.

Parquet modular encryption (pyarrow.parquet.encryption) encrypts a whole file — every column
and the footer — under keys chosen per file, so the encrypted lake writes one file per vehicle
and partition (an append's day slice is cut per vehicle; compaction merges per vehicle). Each
file gets fresh random data-encryption keys, which pyarrow wraps through :class:`_VehicleKms`
with the *vehicle's* data key from the :class:`~drivetrain.cloud.lake.keys.KeyService`; the
wrapped keys live in the file's footer metadata and the vehicle's key id in its name
(``part-<uuid>.k<key id>.parquet``). Destroying the vehicle's key leaves nothing that opens
those keys: every copy of the file — in the lake, a backup, a bucket's old versions — is
unreadable, without rewriting any of them.

Readers list the files, skip those whose key is gone (the files of erased vehicles, deleted
best-effort by the erasure and by the next maintenance run), and read the rest through pyarrow
with decryption properties; DuckDB scans the result through Arrow (it cannot open pyarrow's
key material itself).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drivetrain.cloud.lake.keys import KeyDestroyedError, KeyService
from drivetrain.cloud.lake.models import LAKE_SCHEMA
from drivetrain.cloud.lake.rows import DaySlice

#: ``lake_encryption`` values: off (plain Parquet, the default) or one key per vehicle.
ENCRYPTION_MODES: Final = ("off", "per_vehicle")
_KEY_IN_NAME: Final = re.compile(r"\.k([0-9a-f]{32})\.parquet$")
_NONCE_BYTES: Final = 12
#: How long pyarrow may cache what the key service handed it within one reader or writer.
_CACHE: Final = timedelta(minutes=10)
#: Partition columns under a region root's ``region=<R>/`` directory.
PARTITIONS: Final = pa.schema([pa.field("tenant", pa.utf8()), pa.field("date", pa.date32())])


def key_id_of(name: str) -> str | None:
    """The key id an encrypted lake file's name carries (None: a plain file)."""
    found = _KEY_IN_NAME.search(name)
    return None if found is None else found.group(1)


def file_suffix(key_id: str | None) -> str:
    """The end of a lake file name written under ``key_id`` (or plain)."""
    return ".parquet" if key_id is None else f".k{key_id}.parquet"


class _VehicleKms(pe.KmsClient):  # type: ignore[misc]  # pyarrow ships no stubs
    """pyarrow's KMS client over the key service: the "master key" pyarrow names is the
    vehicle's key id, the keys it wraps are the file's random data-encryption keys."""

    def __init__(self, keys: KeyService) -> None:
        super().__init__()
        self._keys = keys

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self._keys.data_key(master_key_identifier)).encrypt(
            nonce, key_bytes, master_key_identifier.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        raw = base64.b64decode(wrapped_key)
        try:
            return AESGCM(self._keys.data_key(master_key_identifier)).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], master_key_identifier.encode())
        except InvalidTag as e:
            raise KeyDestroyedError(f"file key does not open under {master_key_identifier}") \
                from e


class LakeCipher:
    """Encryption and decryption of the lake's files under per-vehicle keys from ``keys``."""

    def __init__(self, keys: KeyService) -> None:
        self.keys = keys
        self._factory = pe.CryptoFactory(lambda _config: _VehicleKms(keys))
        self._kms = pe.KmsConnectionConfig()
        self._decryption = self._factory.file_decryption_properties(
            self._kms, pe.DecryptionConfiguration(cache_lifetime=_CACHE))

    def per_vehicle(self, tenant: str, slices: Sequence[DaySlice]) -> list[DaySlice]:
        """``slices`` cut into one slice per vehicle, each naming its vehicle's key."""
        cut: list[tuple[str, DaySlice]] = []
        for s in slices:
            vehicles = s.table.column("vehicle").combine_chunks()
            plain = vehicles.cast(pa.utf8()) if pa.types.is_dictionary(vehicles.type) \
                else vehicles
            # a stable sort by vehicle keeps each vehicle's rows in their order; then one
            # slice per run of equal vehicles
            order = pc.sort_indices(plain)
            table, runs = s.table.take(order), plain.take(order).dictionary_encode()
            codes = runs.indices.to_numpy(zero_copy_only=False)
            starts = np.flatnonzero(np.diff(codes, prepend=-1))
            ends = np.append(starts[1:], len(codes))
            names = runs.dictionary.to_pylist()
            for start, end in zip(starts, ends, strict=True):
                part = _compact_dictionaries(table.slice(int(start), int(end - start)))
                cut.append((names[codes[start]], _restat(s, part)))
        ids = self.keys.key_ids(tenant, {v for v, _ in cut}) if cut else {}
        return [replace(s, key_id=ids[v]) for v, s in cut]

    def encryption_properties(self, key_id: str) -> pq.FileEncryptionProperties:
        """Properties that encrypt a whole file (footer included) under ``key_id``."""
        return self._factory.file_encryption_properties(self._kms, pe.EncryptionConfiguration(
            footer_key=key_id, uniform_encryption=True, double_wrapping=False,
            cache_lifetime=_CACHE))

    def file_format(self) -> ds.ParquetFileFormat:
        """The Parquet format of a dataset over encrypted lake files."""
        config = ds.ParquetDecryptionConfig(self._factory, self._kms,
                                            pe.DecryptionConfiguration(cache_lifetime=_CACHE))
        return ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(
                decryption_config=config))

    def read(self, path: Path, columns: Sequence[str] | None = None) -> pa.Table:
        """One encrypted lake file with the lake schema.

        Raises:
            KeyDestroyedError: its key is destroyed.
            OSError, pyarrow.ArrowInvalid: it cannot be read.
        """
        key_id = key_id_of(path.name)
        if key_id is not None and not self.keys.live([key_id]):
            raise KeyDestroyedError(f"{path} was written under a destroyed key")
        return pq.read_table(path, schema=LAKE_SCHEMA, columns=columns,
                             decryption_properties=self._decryption)

    def readable(self, names: Collection[str]) -> set[str]:
        """The ``names`` whose key still exists (plain files always)."""
        ids = {n: key_id_of(n) for n in names}
        live = self.keys.live({k for k in ids.values() if k is not None})
        return {n for n, k in ids.items() if k is None or k in live}

    def read_all(self, paths: Sequence[str], base_dir: Path) -> pa.Table:
        """The rows of ``paths`` under ``base_dir`` (a root's ``region=<R>``), with the
        ``tenant`` and ``date`` partition columns: encrypted files decrypted, plain ones
        (written before encryption was turned on) read as they are. Read in the calling
        thread (shredding.py says why)."""
        parts = []
        for encrypted in (True, False):
            chosen = [p for p in paths if (key_id_of(p) is not None) == encrypted]
            if chosen:
                parts.append(ds.dataset(
                    chosen, schema=_DATASET_SCHEMA,
                    format=self.file_format() if encrypted else "parquet",
                    partitioning=ds.partitioning(PARTITIONS, flavor="hive"),
                    partition_base_dir=str(base_dir)).to_table())
        return pa.concat_tables(parts) if parts else _DATASET_SCHEMA.empty_table()


_DATASET_SCHEMA: Final = pa.schema([*LAKE_SCHEMA, *PARTITIONS])


def _compact_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with its vehicle and batch id dictionaries cut to the values it uses (the
    Parquet writer stores a dictionary column's whole dictionary in every file)."""
    for name in ("vehicle", "batch_id"):
        i = table.schema.get_field_index(name)
        column = table.column(i)
        if pa.types.is_dictionary(column.type):
            table = table.set_column(i, table.schema.field(i), pc.dictionary_encode(
                column.cast(column.type.value_type)).cast(column.type))
    return table


def _restat(whole: DaySlice, part: pa.Table) -> DaySlice:
    ts = part.column("ts").combine_chunks().view(pa.int64())
    categories = pc.value_counts(part.column("category").combine_chunks().cast(pa.utf8()))
    return DaySlice(whole.day, part, pc.min(ts).as_py(), pc.max(ts).as_py(),
                    {c["values"]: c["counts"] for c in categories.to_pylist()})
