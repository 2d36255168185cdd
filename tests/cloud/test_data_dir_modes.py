"""Another local user cannot read the data directory: the state database (with the
per-tenant pseudonym keys) and its folder are owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import text

from drivetrain.cloud.infra import open_database
from drivetrain.cloud.lake import Lake
from drivetrain.core.private_files import make_private_dir, make_private_file
from drivetrain.core.settings import load_settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default: new files world-readable
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
@pytest.mark.embedded_only(reason="the SQLite file's own permissions")
def test_state_db_holding_pseudonym_keys_is_not_world_readable(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "deep" / "data")
    database = open_database(settings)
    try:
        database.upgrade()
        with database.session() as session:  # a write creates the WAL files
            session.execute(text("SELECT 1"))
    finally:
        database.dispose()
    assert _mode(settings.data_dir) == 0o700
    assert _mode(tmp_path / "deep") == 0o700  # parents it created too
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        path = settings.data_dir / name
        if path.exists():
            assert _mode(path) == 0o600, name
    assert (settings.data_dir / "state.db").exists()


@pytest.mark.usefixtures("permissive_umask")
@pytest.mark.embedded_only(reason="the SQLite file's own permissions")
def test_an_existing_world_readable_data_dir_and_database_are_narrowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "state.db").touch()
    os.chmod(data / "state.db", 0o644)
    open_database(load_settings(data_dir=data)).dispose()
    assert _mode(data) == 0o700 and _mode(data / "state.db") == 0o600


@pytest.mark.usefixtures("permissive_umask")
def test_the_lake_root_is_owner_only(tmp_path: Path) -> None:
    ts = pa.array([1_800_000_000_000_000_000], pa.timestamp("ns", "UTC"))
    rows = pa.table({"vehicle": ["v1"], "path": ["Vehicle.Speed"], "ts": ts, "value": [1.0],
                     "text": pa.nulls(1, pa.utf8()), "category": ["driving_behaviour"],
                     "batch_id": ["a" * 32]})
    with Lake(tmp_path / "data") as lake:
        lake.append("EU", "acme", rows)
    parquet = next((tmp_path / "data").rglob("*.parquet"))
    # Every telemetry file lies below the data directory and the region's root, both 0700.
    root = next(p for p in parquet.parents if p.name == "EU" and p.parent.name == "lake")
    assert _mode(tmp_path / "data") == 0o700 and _mode(root) == 0o700


@pytest.mark.usefixtures("permissive_umask")
def test_private_helpers_do_not_touch_an_existing_parent(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    make_private_dir(tmp_path / "a" / "b")
    make_private_file(tmp_path / "a" / "b" / "f")
    assert _mode(tmp_path) == 0o755
    assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
    assert _mode(tmp_path / "a" / "b" / "f") == 0o600
