"""``drivetrain export`` / ``drivetrain import``: a tenant moves between two installations
(SQLite state and a lake each) and comes back out identical; an access archive by owner."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability import verify
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import load_settings

StateUrl = Callable[[Path], str]

Run = Callable[..., str]


def _installation(root: Path, monkeypatch: pytest.MonkeyPatch, state_url: StateUrl) -> Run:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

    def run(*args: str, code: int = 0) -> str:
        monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(root / "data"))
        monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", state_url(root))
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    database = Database(state_url(root))
    database.upgrade()
    database.dispose()  # its pooled connections closed, not left to the garbage collector
    return run


@pytest.fixture
def source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_url: StateUrl
) -> tuple[Run, list[str]]:
    run = _installation(tmp_path / "a", monkeypatch, state_url)
    database = Database(state_url(tmp_path / "a"))
    vins = []
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        for i, owner in enumerate(("ana", "ben")):
            vehicle, _ = provision_vehicle(session, tenant="acme", model="compact-bev",
                                           region="EU", cloud_key=SigningKey.generate().verify_key,
                                           actor="test", rng=random.Random(i), owner=owner)
            vins.append(vehicle.vin)
        pseudonyms = [vehicle_pseudonym(session, "acme", v) for v in vins]
    database.dispose()
    t0 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 10**9
    rows = pa.table({
        "vehicle": pa.array([pseudonyms[i % 2] for i in range(100)]).dictionary_encode(),
        "path": pa.array(["Vehicle.Speed"] * 100).dictionary_encode(),
        "ts": pa.array([t0 + i * 10**9 for i in range(100)], pa.timestamp("ns", tz="UTC")),
        "value": pa.array([float(i) for i in range(100)]),
        "text": pa.nulls(100, pa.utf8()),
        "category": pa.array(["driving_behaviour"] * 100).dictionary_encode(),
        "batch_id": pa.array(["0" * 31 + str(i % 2) for i in range(100)]).dictionary_encode(),
    })
    with Lake.open(load_settings(data_dir=tmp_path / "a" / "data")) as lake:
        lake.append("EU", "acme", rows)
    return run, vins


def test_a_tenant_moves_to_another_installation_and_back_out_unchanged(
    source: tuple[Run, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    state_url: StateUrl,
) -> None:
    run_a, _ = source
    exported = json.loads(run_a("export", str(tmp_path / "one"), "--tenant", "acme", "--json"))
    assert exported["subject"] == "tenant" and exported["telemetry"][0]["rows"] == 100
    run_b = _installation(tmp_path / "b", monkeypatch, state_url)
    report = json.loads(run_b("import", str(tmp_path / "one"), "--json"))
    assert report["inserted"]["fleet_vehicles"] == 2 and report["telemetry_written"] == 100
    table = run_b("import", str(tmp_path / "one"))  # idempotent
    assert "imported into tenant 'acme'" in table
    run_b("export", str(tmp_path / "two"), "--tenant", "acme")
    one, two = verify(tmp_path / "one"), verify(tmp_path / "two")
    assert [(s.table, (tmp_path / "one" / s.path).read_bytes()) for s in one.sections] == \
        [(s.table, (tmp_path / "two" / s.path).read_bytes()) for s in two.sections]
    assert [f.sha256 for f in one.files if f.path.endswith(".parquet")] == \
        [f.sha256 for f in two.files if f.path.endswith(".parquet")]


def test_an_owners_access_archive_holds_only_their_vehicles(
    source: tuple[Run, list[str]], tmp_path: Path
) -> None:
    run, vins = source
    archive = json.loads(run("export", str(tmp_path / "ana"), "--tenant", "acme",
                             "--owner", "ana", "--json"))
    assert archive["subject"] == "vehicles" and archive["vins"] == [vins[0]]
    assert [t["rows"] for t in archive["telemetry"]] == [50]
    assert "owner 'zoe' has no vehicle" in run("export", str(tmp_path / "zoe"), "--tenant",
                                               "acme", "--owner", "zoe", code=1)


def test_import_of_something_that_is_not_a_bundle_fails_naming_it(
    source: tuple[Run, list[str]], tmp_path: Path
) -> None:
    run, _ = source
    (tmp_path / "junk").mkdir()
    assert "not a Drivetrain export" in run("import", str(tmp_path / "junk"), code=1)
