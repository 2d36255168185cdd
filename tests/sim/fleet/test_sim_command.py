"""`drivetrain sim fleet`: help, a short run that provisions, drives, lands in the lake and
writes the ground truth, a re-run that re-keys the same vehicles, and refused options."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import get_vehicle, list_vehicles
from drivetrain.cloud.infra import Database, open_database
from drivetrain.cloud.ingest import IngestPipeline, IngestWorker, TwinsReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.core.settings import load_settings
from drivetrain.core.transport.factory import open_transport
from drivetrain.sim.fleet.groundtruth import read_manifest


def test_sim_fleet_help_names_every_option() -> None:
    result = CliRunner().invoke(cli_app, ["sim", "fleet", "--help"])
    assert result.exit_code == 0
    for option in (
        "--vehicles",
        "--duration",
        "--speedup",
        "--out",
        "--broker",
        "--attacks",
        "--headless",
    ):
        assert option in result.output


@contextmanager
def broker_ingest(published: Callable[[], int]) -> Iterator[None]:
    """With a broker configured (the fleet profile), `sim fleet` publishes to it and leaves
    ingestion to the broker's ingest workers: here one such worker runs beside the command,
    in a shared group of its own, and the block ends once it has received and committed the
    ``published()`` messages (at most 120 s). Without a broker the command ingests itself."""
    settings = load_settings()
    if settings.broker_url is None:
        yield
        return
    database = open_database(settings)
    lake = Lake.open(settings)
    transport = open_transport(settings.broker_url, client_id=f"sim-test-{uuid.uuid4().hex[:8]}")
    pipeline = IngestPipeline.from_settings(settings, database, lake, TwinsReportedState())
    worker = IngestWorker(transport, pipeline, group=f"sim-test-{uuid.uuid4().hex[:8]}").start()
    try:
        yield
        deadline = time.monotonic() + 120
        while worker.stats().received < published() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.wait_idle(timeout_s=60), worker.stats()
        assert worker.stats().received >= published(), worker.stats()
    finally:
        worker.stop()
        transport.close()
        lake.close()
        database.dispose()


def _published(output: str) -> int:
    """The summary's "N messages published"."""
    match = re.search(r"([\d,]+) messages published", " ".join(output.split()))
    assert match is not None, output
    return int(match.group(1).replace(",", ""))


def test_short_run_provisions_drives_lands_in_the_lake_and_writes_the_ground_truth(
    cli: Callable[..., str], database_url: str
) -> None:
    output = ""
    with broker_ingest(lambda: _published(output)):
        output = cli(
            "sim", "fleet", "--vehicles", "3", "--duration", "12", "--speedup", "0",
            "--headless", "--out", "run", "--attacks", "mixed",
        )  # fmt: skip
    assert "[fleet] t=12/12 s" in output
    assert "3 vehicles drove" in output and "ground truth in" in output
    assert f"data directory: {Path('data').resolve()} (from DRIVETRAIN_DATA_DIR)" in output
    manifest = read_manifest(Path("run/manifest.json"))
    vins = [v["vin"] for v in manifest["vehicles"]]
    assert len(vins) == 3 and manifest["files"]["attacks.parquet"]["rows"] >= 1
    database = Database(database_url)
    try:
        with database.session() as session:
            registered = {v.vin for v in list_vehicles(session, tenant="default")}
            key_before = get_vehicle(session, vins[0]).key_id
    finally:
        database.dispose()
    assert set(vins) <= registered
    lake = Lake.open(load_settings())
    try:
        rows = {row["region"]: row["rows"] for row in lake.counts("default").to_pylist()}
    finally:
        lake.close()
    assert {v["region"] for v in manifest["vehicles"]} <= set(rows)

    cli(
        "sim",
        "fleet",
        "--vehicles",
        "3",
        "--duration",
        "2",
        "--speedup",
        "0",
        "--headless",
        "--out",
        "run",
    )
    database = Database(database_url)
    try:
        with database.session() as session:
            assert get_vehicle(session, vins[0]).key_id != key_before  # the re-run re-keyed it
    finally:
        database.dispose()


def _dropped_for_consent(output: str) -> dict[str, int]:
    """The summary's "N dropped for consent (category n, ...)" as {category: n}."""
    summary = " ".join(output.split())
    match = re.search(r"([\d,]+) dropped for consent \(([^)]*)\)", summary)
    if match is None:
        return {}
    counts = {}
    for item in match.group(2).split(", "):
        category, n = item.rsplit(" ", 1)
        counts[category] = int(n.replace(",", ""))
    assert sum(counts.values()) == int(match.group(1).replace(",", ""))
    return counts


def test_summary_counts_what_consent_dropped_per_category(
    cli: Callable[..., str], database_url: str
) -> None:
    args = ("sim", "fleet", "--vehicles", "2", "--duration", "20", "--speedup", "0",
            "--headless", "--out", "run")
    output = ""
    with broker_ingest(lambda: _published(output)):
        output = cli(*args)
    dropped = _dropped_for_consent(output)
    assert set(dropped) == {"driving_behaviour", "location", "cabin"}  # the default consent
    assert all(n > 0 for n in dropped.values())
    with Lake.open(load_settings()) as lake:
        stored = {row["category"] for row in lake.counts("default").to_pylist()}
    assert stored == {"technical", "diagnostics"}


@pytest.mark.embedded_only(
    reason="--consent goes to the cars from this process over the in-process bus before they "
    "start; with a broker the fleet's dispatcher delivers it, with no delivery-before-start"
)
def test_consent_all_collects_every_category(cli: Callable[..., str]) -> None:
    args = ("sim", "fleet", "--vehicles", "2", "--duration", "20", "--speedup", "0",
            "--headless", "--out", "run")
    everything = cli(*args, "--consent", "all")
    assert _dropped_for_consent(everything) == {} and "dropped for consent" not in everything
    with Lake.open(load_settings()) as lake:
        stored = {row["category"] for row in lake.counts("default").to_pylist()}
    assert {"driving_behaviour", "location", "cabin"} <= stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--regions", "EU,XX"), "region 'XX'"),
        (("--models", "tractor"), "model 'tractor'"),
        (("--duration", "0", "--speedup", "5"), "needs --speedup 1"),
        (("--attacks", "chaos"), "'chaos' is not a preset"),
        (("--consent", "technical,gossip"), "--consent"),
    ],
)
def test_bad_options_are_refused_naming_them(
    cli: Callable[..., str], args: tuple[str, ...], message: str
) -> None:
    output = cli("sim", "fleet", "--vehicles", "2", "--headless", *args, code=2)
    assert message in " ".join(output.split())
