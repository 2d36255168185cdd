"""Crypto-shredding on the Delta lake (``lake_url`` with ``lake_encryption = "per_vehicle"``),
on a local table and on moto's S3 server: each vehicle's rows sit in files of their own,
encrypted under its key and committed as Delta add actions; erasing a vehicle destroys the key
and nothing of it can be read afterwards — not through the lake, not from the raw Parquet
files with DuckDB or pyarrow, not from a copy taken before, not by time travel — while the
other vehicles read, compact, expire and export as before, and a batch id is stored once."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from lake_rows import NS_DAY, T0, T0_NS, sorted_rows, vehicle_id
from lake_s3_writer import micro_rows
from s3_helpers import s3_client, s3_keys, s3_options

from drivetrain.cloud.lake import Lake, RetentionPolicy, read_manifest
from drivetrain.cloud.lake.crypto import LakeCipher, key_id_of
from drivetrain.cloud.lake.keys import KeyDestroyedError, LocalKeyService
from drivetrain.cloud.lake.tables import open_region_table
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings, load_settings
from tests.conftest import MOTO_BUCKET

ALL = "SELECT vehicle, path, ts, value, batch_id FROM telemetry"
VEHICLES = 6
ERASED = [vehicle_id(1), vehicle_id(4)]


class Where:
    """A lake URL and the raw objects under it (local files or S3 keys)."""

    def __init__(
        self,
        url: str,
        settings: Callable[..., Settings],
        names: Callable[[], list[str]],
        read: Callable[[str], bytes],
    ) -> None:
        self.url, self.settings, self.names, self.read = url, settings, names, read

    def data_files(self) -> dict[str, bytes]:
        """Every data file's bytes, by name."""
        return {
            n: self.read(n)
            for n in self.names()
            if n.endswith(".parquet") and "_delta_log" not in n
        }

    def log(self) -> bytes:
        """Every commit of the log, concatenated."""
        return b"".join(
            self.read(n) for n in self.names() if "_delta_log" in n and n.endswith(".json")
        )


@pytest.fixture(params=["file", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    data = tmp_path / "data"
    if request.param == "file":
        root = tmp_path / "lake"
        url = f"file://{root}"
        return Where(
            url,
            lambda **kw: load_settings(data_dir=data, lake_url=url, **kw),
            lambda: sorted(str(p) for p in root.rglob("*") if p.is_file()),
            lambda n: Path(n).read_bytes(),
        )
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = request.getfixturevalue("prefix")
    url = f"s3://{MOTO_BUCKET}/{prefix}"
    client = s3_client(endpoint)
    return Where(
        url,
        lambda **kw: load_settings(
            data_dir=data, lake_url=url, lake_storage_options=s3_options(endpoint), **kw
        ),
        lambda: s3_keys(endpoint, prefix),
        lambda n: client.get_object(Bucket=MOTO_BUCKET, Key=n)["Body"].read(),
    )


@pytest.fixture
def enc_lake(where: Where) -> Iterator[Lake]:
    """An encrypted Delta lake holding two days of six vehicles, in two appends."""
    with Lake.open(where.settings(lake_encryption="per_vehicle")) as lake:
        lake.append("EU", "acme", micro_rows(1, n=1200, vehicles=VEHICLES))
        lake.append("EU", "acme", micro_rows(2, n=1200, vehicles=VEHICLES, start_ns=T0_NS + NS_DAY))
        yield lake


def _opens_without_key(raw: bytes, scratch: Path) -> bool:
    """Whether pyarrow or DuckDB read anything of a file from its bytes alone."""
    try:
        pq.read_table(io.BytesIO(raw))
        return True
    except OSError:
        pass
    scratch.write_bytes(raw)
    with duckdb.connect() as con:
        try:
            con.execute("SELECT count(*) FROM read_parquet(?)", [str(scratch)]).fetchall()
            return True
        except duckdb.Error:
            return False


def test_each_vehicle_day_is_one_encrypted_file_and_the_log_holds_no_values(
    enc_lake: Lake,
    where: Where,
    tmp_path: Path,
) -> None:
    files = where.data_files()
    assert len(files) == 2 * VEHICLES
    assert all(key_id_of(n) for n in files)
    for raw in files.values():
        assert not _opens_without_key(raw, tmp_path / "raw.parquet")
        for i in range(VEHICLES):
            assert vehicle_id(i).encode() not in raw
    # the log is plaintext and outlives erasure: its add actions carry no column statistics
    log = where.log()
    adds = [json.loads(line)["add"] for line in log.splitlines() if b'"add"' in line]
    assert len(adds) == 2 * VEHICLES
    assert all(set(json.loads(a["stats"])) == {"numRecords"} for a in adds)
    for i in range(VEHICLES):
        assert f'"{vehicle_id(i)}"'.encode() not in log  # no pseudonym as a JSON value
    # through the lake everything reads back
    expected = sorted_rows(micro_rows(1, n=1200, vehicles=VEHICLES)) + sorted_rows(
        micro_rows(2, n=1200, vehicles=VEHICLES, start_ns=T0_NS + NS_DAY)
    )
    assert sorted_rows(enc_lake.sql("acme", ALL)) == sorted(expected)
    counts = enc_lake.counts("acme")
    assert sum(counts.column("rows").to_pylist()) == 2400


def test_erasure_destroys_the_keys_and_nothing_reads_from_the_lake_a_copy_or_an_old_version(
    enc_lake: Lake,
    where: Where,
    tmp_path: Path,
) -> None:
    lake = enc_lake
    before = sorted_rows(lake.sql("acme", ALL))
    version_before = lake.table_version("EU")
    copy = where.data_files()  # a backup taken before the erasure
    keys = LocalKeyService(tmp_path / "data" / "keys")
    erased_keys = set(keys.key_ids("acme", ERASED).values())

    results = lake.erase_vehicles("acme", ERASED)

    assert sum(r.keys_destroyed for r in results) == 2
    assert sum(r.files_deleted for r in results) == 4
    assert sum(r.rows_removed for r in results) == sum(1 for r in before if r[0] in ERASED)
    # purged from storage at once
    assert {key_id_of(n) for n in where.data_files()}.isdisjoint(erased_keys)
    # through the lake: the others' rows exactly, none of the erased; also by time travel
    others = [r for r in before if r[0] not in ERASED]
    assert sorted_rows(lake.sql("acme", ALL)) == others
    assert sorted_rows(lake.sql("acme", ALL, as_of={"EU": version_before})) == others
    per_vehicle = lake.fleet_aggregate(
        "acme", "Vehicle.Speed", T0, T0 + timedelta(days=3), group_by="vehicle"
    )
    assert set(per_vehicle.column("vehicle").to_pylist()).isdisjoint(ERASED)
    assert len(per_vehicle) > 0
    # the copy: nothing opens without the key service; the erased files not even with it
    cipher = LakeCipher(keys)
    erased_files = {n: raw for n, raw in copy.items() if key_id_of(n) in erased_keys}
    assert len(erased_files) == 4
    for name, raw in copy.items():
        assert not _opens_without_key(raw, tmp_path / "raw.parquet")
        path = tmp_path / "copy" / Path(name).name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(raw)
        if name in erased_files:
            with pytest.raises(KeyDestroyedError):
                cipher.read(path)
            with pytest.raises(KeyDestroyedError):  # skipping the lake's check is no help
                pq.read_table(path, decryption_properties=cipher._decryption)
        else:
            assert cipher.read(path).num_rows > 0
    keys.close()


def test_a_batch_delivered_again_or_by_a_racing_writer_is_stored_once(where: Where) -> None:
    rows = micro_rows(3, n=900, vehicles=VEHICLES)
    with Lake.open(where.settings(lake_encryption="per_vehicle")) as other:
        raced = []

        def race(step: str) -> None:
            # another writer commits the same batch ids after this one planned and uploaded
            if step == "append.writing" and not raced:
                raced.append(other.append("EU", "acme", rows))

        with Lake.open(where.settings(lake_encryption="per_vehicle"), checkpoint=race) as lake:
            other.append("EU", "acme", micro_rows(4, n=300, vehicles=VEHICLES))  # the table
            mine = lake.append("EU", "acme", rows)
            assert raced[0].rows_written == 900
            assert mine.rows_written == 0 and mine.rows_skipped == 900
            again = lake.append("EU", "acme", rows)
            assert again.rows_written == 0 and again.rows_skipped == 900
            assert (
                lake.sql("acme", "SELECT count(*) AS n FROM telemetry").column("n")[0].as_py()
                == 1200
            )
    # the losing writer's uploads were deleted: one file per vehicle and append
    assert len(where.data_files()) == 2 * VEHICLES


def test_compaction_retention_and_export_keep_every_file_encrypted(
    enc_lake: Lake,
    where: Where,
    tmp_path: Path,
) -> None:
    lake = enc_lake
    lake.append("EU", "acme", micro_rows(5, n=1200, vehicles=VEHICLES))
    before = sorted_rows(lake.sql("acme", ALL))
    assert len(where.data_files()) == 3 * VEHICLES

    done = lake.compact(keep_replaced_hours=0)
    assert done[0].files_before == 2 * VEHICLES and done[0].files_after == VEHICLES
    files = where.data_files()
    assert len(files) == 2 * VEHICLES  # merged per vehicle and day, replaced ones purged
    assert not any(_opens_without_key(raw, tmp_path / "raw.parquet") for raw in files.values())
    assert sorted_rows(lake.sql("acme", ALL)) == before

    lake.erase_vehicles("acme", ERASED)
    lake.apply_retention(
        policy=RetentionPolicy.from_mapping({"EU:location": 1}),
        today=(T0 + timedelta(days=30)).date(),
    )
    left = lake.sql("acme", "SELECT DISTINCT category FROM telemetry").column("category")
    assert "location" not in left.to_pylist() and len(left) == 4
    assert not any(
        _opens_without_key(raw, tmp_path / "raw.parquet") for raw in where.data_files().values()
    )
    seen = lake.sql("acme", "SELECT DISTINCT vehicle FROM telemetry").column("vehicle")
    assert sorted(seen.to_pylist()) == sorted(
        {vehicle_id(i) for i in range(VEHICLES)} - set(ERASED)
    )

    manifest = lake.export_bundle("acme", "EU", tmp_path / "bundle", vehicle_id(0))
    mine = (
        lake.sql("acme", f"SELECT count(*) AS n FROM telemetry WHERE vehicle = '{vehicle_id(0)}'")
        .column("n")[0]
        .as_py()
    )
    assert manifest.rows == mine > 0
    assert read_manifest(tmp_path / "bundle").vehicle == vehicle_id(0)
    with duckdb.connect() as con:  # the bundle is for its recipient: plain Parquet
        for f in manifest.files:
            con.execute(
                "SELECT count(*) FROM read_parquet(?)", [str(tmp_path / "bundle" / f.path)]
            ).fetchall()
    assert lake.export_bundle("acme", "EU", tmp_path / "gone", ERASED[0]).rows == 0


def test_a_table_is_either_plain_or_encrypted(tmp_path: Path) -> None:
    plain_url, enc_url = f"file://{tmp_path / 'plain'}", f"file://{tmp_path / 'enc'}"
    rows = micro_rows(6, n=300)
    with Lake.open(load_settings(data_dir=tmp_path / "d1", lake_url=plain_url)) as lake:
        lake.append("EU", "acme", rows)
    with Lake.open(
        load_settings(data_dir=tmp_path / "d2", lake_url=enc_url, lake_encryption="per_vehicle")
    ) as lake:
        lake.append("EU", "acme", rows)
    with (
        Lake.open(
            load_settings(
                data_dir=tmp_path / "d1", lake_url=plain_url, lake_encryption="per_vehicle"
            )
        ) as lake,
        pytest.raises(ConfigurationError, match="created plain"),
    ):
        lake.append("EU", "acme", micro_rows(7, n=300))
    with (
        Lake.open(load_settings(data_dir=tmp_path / "d2", lake_url=enc_url)) as lake,
        pytest.raises(ConfigurationError, match="encrypted per vehicle"),
    ):
        lake.sql("acme", ALL)
    # a lake handed a plain table while encrypted refuses it before writing anything
    with (
        Lake(
            tmp_path / "d3",
            keys=LocalKeyService(tmp_path / "d3" / "keys"),
            tables=lambda r: open_region_table("delta", plain_url, r, {}, batch_window_days=35),
        ) as lake,
        pytest.raises(ConfigurationError, match="not encrypted"),
    ):
        lake.append("EU", "acme", rows)


def test_spark_frames_refuse_the_encrypted_lake_naming_the_setting(enc_lake: Lake) -> None:
    from drivetrain.cloud.batch.frames import lake_frame

    # refused before Spark is touched (the session argument is never used)
    with pytest.raises(ConfigurationError, match="lake_encryption = 'per_vehicle'"):
        lake_frame(None, enc_lake, "acme")  # type: ignore[arg-type]


class _Killed(Exception):
    """Stands for the writer's process dying at a checkpoint."""


def test_a_writer_dying_between_upload_and_commit_stores_nothing_and_redelivery_stores_once(
    where: Where,
) -> None:
    rows = micro_rows(8, n=600, vehicles=VEHICLES)

    def die(step: str) -> None:
        if step == "append.writing":
            raise _Killed(step)

    with (
        Lake.open(where.settings(lake_encryption="per_vehicle"), checkpoint=die) as lake,
        pytest.raises(_Killed),
    ):
        lake.append("EU", "acme", rows)
    uploaded = set(where.data_files())
    assert len(uploaded) == VEHICLES  # uploaded, never committed
    with Lake.open(where.settings(lake_encryption="per_vehicle")) as lake:
        assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry").column("n")[0].as_py() == 0
        assert lake.append("EU", "acme", rows).rows_written == 600
        assert lake.append("EU", "acme", rows).rows_skipped == 600
        assert sorted_rows(lake.sql("acme", ALL)) == sorted_rows(rows)
        # the orphans stay out of every listing (a full vacuum deletes them after a day)
        assert {f.name for f in lake.table("EU").files()}.isdisjoint(
            {n.split("region=EU/", 1)[1] for n in uploaded}
        )
