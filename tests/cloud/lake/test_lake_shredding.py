"""Crypto-shredding: the encrypted lake keeps each vehicle's rows under its own key, erasing a
vehicle destroys the key, and nothing of it can be read afterwards — not through the lake, not
from the raw Parquet files with DuckDB or pyarrow, not from a backup taken before — while the
other vehicles read, compact, expire and export as before."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lake_rows import NS_DAY, T0, T0_NS, make_rows, sorted_rows, vehicle_id

from drivetrain.cloud.lake import Lake, RetentionPolicy, read_manifest
from drivetrain.cloud.lake.crypto import LakeCipher, file_suffix, key_id_of
from drivetrain.cloud.lake.keys import (
    KEYSTORE_FILE,
    MASTER_KEY_FILE,
    KeyDestroyedError,
    LocalKeyService,
)
from drivetrain.core.errors import StorageError
from drivetrain.core.settings import Settings

ALL = "SELECT vehicle, path, ts, value, batch_id FROM telemetry"
VEHICLES = 6
ERASED = [vehicle_id(1), vehicle_id(4)]


@pytest.fixture
def shredding_lake(tmp_path: Path) -> Iterator[Lake]:
    """An encrypted lake holding two days of six vehicles, in two appends."""
    data = tmp_path / "data"
    with Lake(data, keys=LocalKeyService(data / "keys")) as lake:
        lake.append("EU", "acme", make_rows(3000, seed=1, vehicles=VEHICLES))
        lake.append("EU", "acme", make_rows(3000, seed=2, vehicles=VEHICLES,
                                            start_ns=T0_NS + NS_DAY))
        yield lake


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def _duckdb_reads(path: Path) -> bool:
    with duckdb.connect() as con:
        try:
            con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()
        except duckdb.Error:
            return False
    return True


def test_each_file_holds_one_vehicle_under_its_key(shredding_lake: Lake, tmp_path: Path) -> None:
    files = _files(tmp_path / "data" / "lake")
    assert len(files) == 2 * VEHICLES  # per vehicle and day
    keys = LocalKeyService(tmp_path / "data" / "keys")
    ids = keys.key_ids("acme", [vehicle_id(i) for i in range(VEHICLES)])
    assert {key_id_of(p.name) for p in files} == set(ids.values())
    for p in files:  # no reader without the key opens any of them
        assert not _duckdb_reads(p)
        with pytest.raises(OSError):
            pq.read_table(p)
    cipher = LakeCipher(keys)
    by_key = {v: k for k, v in ids.items()}
    for p in files:
        vehicles = cipher.read(p).column("vehicle").unique().to_pylist()
        assert vehicles == [by_key[key_id_of(p.name)]]
    keys.close()


def test_erasure_destroys_the_keys_and_nothing_of_theirs_reads_even_from_a_backup(
    shredding_lake: Lake, tmp_path: Path,
) -> None:
    lake = shredding_lake
    before = sorted_rows(lake.sql("acme", ALL))
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "data" / "lake", backup)
    keys = LocalKeyService(tmp_path / "data" / "keys")
    erased_keys = set(keys.key_ids("acme", ERASED).values())

    results = lake.erase_vehicles("acme", ERASED)

    assert sum(r.keys_destroyed for r in results) == 2
    assert sum(r.files_deleted for r in results) == 4  # deleted from the lake, best-effort
    assert {key_id_of(p.name) for p in _files(tmp_path / "data" / "lake")}.isdisjoint(
        erased_keys)
    # through the lake: the others' rows exactly, none of the erased
    after = sorted_rows(lake.sql("acme", ALL))
    assert after == [r for r in before if r[0] not in ERASED]
    assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry WHERE vehicle IN "
                    f"('{ERASED[0]}', '{ERASED[1]}')").column("n")[0].as_py() == 0
    # the backup taken before: the erased vehicles' files open for no one, with or without
    # the key service; the others' still open with it
    cipher = LakeCipher(keys)
    erased_files = [p for p in _files(backup) if key_id_of(p.name) in erased_keys]
    assert len(erased_files) == 4
    for p in _files(backup):
        assert not _duckdb_reads(p)
        raw = p.read_bytes()
        for vehicle in ERASED:
            assert vehicle.encode() not in raw  # pseudonyms and values are ciphertext
        if p in erased_files:
            with pytest.raises(KeyDestroyedError):
                cipher.read(p)
        else:
            assert cipher.read(p).num_rows > 0
    # even a reader that skips the lake's check cannot unwrap the file keys any more
    with pytest.raises(KeyDestroyedError):
        pq.read_table(erased_files[0], decryption_properties=cipher._decryption)
    # no copy of the destroyed keys stays in the key file
    store = (tmp_path / "data" / "keys" / KEYSTORE_FILE).read_bytes()
    for key_id in erased_keys:
        assert key_id.encode() not in store
    keys.close()


def test_a_key_destroyed_by_another_process_is_honoured_at_once(
    shredding_lake: Lake, tmp_path: Path,
) -> None:
    lake = shredding_lake
    assert lake.sql("acme", "SELECT count(DISTINCT vehicle) AS n FROM telemetry") \
        .column("n")[0].as_py() == VEHICLES  # this process's key cache is warm
    other = LocalKeyService(tmp_path / "data" / "keys")
    assert other.destroy("acme", ERASED) == 2
    other.close()
    seen = lake.sql("acme", "SELECT DISTINCT vehicle FROM telemetry").column("vehicle")
    assert sorted(seen.to_pylist()) == sorted(
        {vehicle_id(i) for i in range(VEHICLES)} - set(ERASED))
    counts = lake.fleet_aggregate("acme", "Vehicle.Speed", T0 - timedelta(days=1),
                                  T0 + timedelta(days=3), group_by="vehicle")
    assert set(counts.column("vehicle").to_pylist()).isdisjoint(ERASED)
    # the next maintenance run deletes their files
    lake.compact()
    assert len(_files(tmp_path / "data" / "lake")) == 2 * (VEHICLES - len(ERASED))


def test_compaction_retention_and_export_work_on_the_encrypted_lake(
    shredding_lake: Lake, tmp_path: Path,
) -> None:
    lake = shredding_lake
    lake.append("EU", "acme", make_rows(2000, seed=3, vehicles=VEHICLES))
    before = sorted_rows(lake.sql("acme", ALL))
    assert len(_files(tmp_path / "data" / "lake")) == 3 * VEHICLES
    results = lake.compact()
    assert results[0].files_after == 2 * VEHICLES  # merged per vehicle and day
    assert sorted_rows(lake.sql("acme", ALL)) == before
    lake.erase_vehicles("acme", ERASED)
    lake.apply_retention(policy=RetentionPolicy.from_mapping({"EU:location": 1}),
                         today=(T0 + timedelta(days=30)).date())
    left = lake.sql("acme", "SELECT DISTINCT category FROM telemetry").column("category")
    assert "location" not in left.to_pylist() and len(left) == 4
    manifest = lake.export_bundle("acme", "EU", tmp_path / "bundle", vehicle_id(0))
    mine = lake.sql("acme", f"SELECT count(*) AS n FROM telemetry WHERE vehicle = "
                    f"'{vehicle_id(0)}'").column("n")[0].as_py()
    assert manifest.rows == mine > 0
    assert read_manifest(tmp_path / "bundle").vehicle == vehicle_id(0)
    # the bundle is for its recipient: plain Parquet any tool reads
    for f in manifest.files:
        assert _duckdb_reads(tmp_path / "bundle" / f.path)
    assert lake.export_bundle("acme", "EU", tmp_path / "gone", ERASED[0]).rows == 0


def test_a_vehicle_seen_again_after_erasure_gets_a_new_key(tmp_path: Path) -> None:
    keys = LocalKeyService(tmp_path / "keys")
    first = keys.key_ids("acme", ["v1", "v2"])
    assert keys.key_ids("acme", ["v1"]) == {"v1": first["v1"]}
    assert keys.key_ids("other", ["v1"])["v1"] != first["v1"]  # per tenant
    key = keys.data_key(first["v1"])
    assert len(key) == 16
    assert keys.destroy("acme", ["v1", "never-seen"]) == 1
    with pytest.raises(KeyDestroyedError):
        keys.data_key(first["v1"])
    assert keys.live(first.values()) == {first["v2"]}
    again = keys.key_ids("acme", ["v1"])["v1"]
    assert again != first["v1"] and keys.data_key(again) != key
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / MASTER_KEY_FILE).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / KEYSTORE_FILE).st_mode) == 0o600
    keys.close()


def test_a_different_master_key_opens_nothing(tmp_path: Path) -> None:
    keys = LocalKeyService(tmp_path / "keys")
    key_id = keys.key_ids("acme", ["v1"])["v1"]
    keys.close()
    (tmp_path / "keys" / MASTER_KEY_FILE).write_text("00" * 32)
    other = LocalKeyService(tmp_path / "keys")
    with pytest.raises(StorageError, match="master key"):
        other.data_key(key_id)
    other.close()
    (tmp_path / "keys" / MASTER_KEY_FILE).write_text("not a key")
    with pytest.raises(StorageError, match="holds no master key"):
        LocalKeyService(tmp_path / "keys")


def test_the_setting_turns_it_on_and_it_is_off_by_default(tmp_path: Path) -> None:
    with Lake.open(Settings(data_dir=tmp_path / "plain")) as lake:
        lake.append("EU", "acme", make_rows(100))
        assert all(key_id_of(p.name) is None for p in _files(tmp_path / "plain"))
        assert all(_duckdb_reads(p) for p in _files(tmp_path / "plain"))
    settings = Settings(data_dir=tmp_path / "enc", lake_encryption="per_vehicle")
    with Lake.open(settings) as lake:
        lake.append("EU", "acme", make_rows(100))
        assert all(key_id_of(p.name) for p in _files(tmp_path / "enc" / "lake"))
    assert (tmp_path / "enc" / "keys" / MASTER_KEY_FILE).is_file()


def test_turning_it_on_keeps_the_plain_files_readable_and_erasable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Lake(data) as plain:
        plain.append("EU", "acme", make_rows(1000, seed=1, vehicles=VEHICLES))
    with Lake(data, keys=LocalKeyService(data / "keys")) as lake:
        lake.append("EU", "acme", make_rows(1000, seed=2, vehicles=VEHICLES))
        names = [p.name for p in _files(data / "lake")]
        assert sum(key_id_of(n) is None for n in names) == 1 and len(names) == 1 + VEHICLES
        before = sorted_rows(lake.sql("acme", ALL))
        assert len(before) == 2000
        bundle = lake.export_bundle("acme", "EU", tmp_path / "bundle")
        assert bundle.rows == 2000
        results = lake.erase_vehicles("acme", ERASED)
        # the keys of the encrypted files destroyed, the plain file rewritten without them
        assert sum(r.keys_destroyed for r in results) == 2
        assert sum(r.files_rewritten for r in results) == 1
        assert sorted_rows(lake.sql("acme", ALL)) == [r for r in before if r[0] not in ERASED]
        for p in _files(data / "lake"):
            if key_id_of(p.name) is None:
                with duckdb.connect() as con:
                    left = con.execute("SELECT DISTINCT vehicle FROM read_parquet(?)",
                                       [str(p)]).fetchall()
                assert {v for (v,) in left}.isdisjoint(ERASED)


@given(st.text("0123456789abcdefk-", max_size=40),
       st.one_of(st.none(), st.text("0123456789abcdef", min_size=32, max_size=32)))
def test_a_file_name_gives_back_exactly_its_key_id(stem: str, key_id: str | None) -> None:
    assert key_id_of(f"part-{stem}{file_suffix(key_id)}") == key_id
    assert key_id_of(f"part-{stem}.k{key_id or ''}.parquet.tmp") is None
