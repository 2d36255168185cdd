"""The insights platform: a model trained from the lake with the simulator's ground truth is
stored as a versioned artifact with its card, scored over the lake by the batch job (by hand
and on the control plane's schedule), its predictions stored in the state database and read
by the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from insights_fleet import FleetLake, fill_tenant
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.infra import Database
from drivetrain.cloud.insights.models import PredictionRow
from drivetrain.cloud.insights.registry import (
    CARD_FILE,
    MODEL_FILE,
    ModelArtifactError,
    ModelCard,
    ModelRegistry,
)
from drivetrain.cloud.insights.scheduler import ScoringLoop
from drivetrain.cloud.insights.service import list_alerts, score_tenant, vehicle_predictions
from drivetrain.cloud.lake import Lake
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.settings import Settings

pytest.importorskip("lightgbm")


@pytest.fixture
def fleet(settings: Settings, sqlite_database: Database, tmp_path: Path) -> FleetLake:
    with Lake.open(settings) as lake:
        return fill_tenant(sqlite_database, lake, "default", tmp_path / "run")


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["insights", *args],
                                env={"DRIVETRAIN_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"})
    return result.exit_code, result.output


def _train(settings: Settings, fleet: FleetLake, *extra: str) -> dict[str, object]:
    code, out = _cli(settings, "train", "--ground-truth", str(fleet.ground_truth),
                     "--since", fleet.start.isoformat(), "--until", fleet.end.isoformat(),
                     "--every", "5m", "--horizon", "20m", "--json", *extra)
    assert code == 0, out
    return json.loads(out)  # type: ignore[no-any-return]


def test_training_from_the_lake_stores_a_versioned_model_with_its_card(
    settings: Settings, fleet: FleetLake
) -> None:
    card = _train(settings, fleet)
    assert card["name"] == "maintenance" and card["version"] == 1
    training = card["training"]
    assert isinstance(training, dict)
    # The data range is the lake's 5-minute buckets around the fleet's samples.
    assert 0 <= (fleet.start - datetime.fromisoformat(training["start"])).total_seconds() < 300
    assert 0 <= (fleet.end - datetime.fromisoformat(training["end"])).total_seconds() < 300
    assert training["vehicles"] == 30 and training["held_out_vehicles"] == 9
    assert training["failures"] > 0  # ground truth joined through the pseudonyms
    assert sum(training["positives"].values()) > 0
    held_out = card["metrics"]["held_out"]  # type: ignore[index]
    assert {r["component"] for r in held_out} == {"brake_pads", "tires", "lv_battery", "coolant_pump", "hv_cell"}
    assert sum(r["failures"] for r in held_out) > 0
    assert "tire_pressure_min_kpa" in card["features"]  # type: ignore[operator]
    assert card["code_version"].startswith("0.")  # type: ignore[union-attr]
    folder = settings.data_dir / "models" / "default" / "maintenance" / "1"
    assert json.loads((folder / CARD_FILE).read_text())["sha256"] == card["sha256"]
    assert (folder / MODEL_FILE).stat().st_size > 0
    assert _train(settings, fleet)["version"] == 2
    code, out = _cli(settings, "models", "--json")
    assert code == 0, out
    models = json.loads(out)["models"]
    assert [(m["name"], m["versions"]) for m in models] == [("maintenance", [1, 2])]
    code, out = _cli(settings, "card", "maintenance", "--version", "1")
    assert code == 0 and "held-out vehicles" in out


def test_scoring_stores_predictions_and_the_cli_reads_alerts_and_a_vehicle(
    settings: Settings, sqlite_database: Database, fleet: FleetLake
) -> None:
    _train(settings, fleet)
    registry = ModelRegistry.for_tenant(settings.data_dir, "default")
    with Lake.open(settings) as lake:
        run = score_tenant(sqlite_database, lake, registry, "default", trigger="command",
                           actor="test", now=fleet.end)
    assert run.vehicles == 30 and run.predictions == 30 * 5
    with sqlite_database.session() as session:
        _, alerts = list_alerts(session, "default")
        stored = session.query(PredictionRow).count()
        vin = fleet.vins[0]
        _, mine = vehicle_predictions(session, "default", vin)
    assert stored == 150
    assert run.alerts == len(alerts) > 0  # the accelerated fleet is failing
    assert all(a.vin in fleet.vins and a.probability >= 0.5 for a in alerts)
    assert all(a.window_start <= a.window_end for a in alerts)
    assert [p.component for p in mine] == sorted(["brake_pads", "tires", "lv_battery", "coolant_pump", "hv_cell"])
    code, out = _cli(settings, "alerts", "--json")
    assert code == 0, out
    document = json.loads(out)
    assert document["run"]["run_id"] == run.run_id and len(document["alerts"]) == len(alerts)
    code, out = _cli(settings, "show", vin, "--json")
    assert code == 0 and len(json.loads(out)["predictions"]) == 5
    code, out = _cli(settings, "alerts")
    assert code == 0 and alerts[0].component in out


def test_the_control_planes_scoring_loop_scores_every_tenant_with_a_model(
    settings: Settings, sqlite_database: Database, fleet: FleetLake
) -> None:
    loop = ScoringLoop(settings, sqlite_database, interval_s=3600)
    assert loop.run_once() == []  # no model yet: nothing to score
    _train(settings, fleet)
    runs = loop.run_once(now=fleet.end)
    assert [(r.tenant, r.trigger, r.vehicles) for r in runs] == [("default", "schedule", 30)]


def test_serve_and_the_dispatch_worker_run_the_scoring_loop_on_its_schedule(
    settings: Settings, sqlite_database: Database, fleet: FleetLake
) -> None:
    import time

    from drivetrain.api.background import ControlPlane
    from drivetrain.cloud.insights.service import list_runs

    _train(settings, fleet)
    often = settings.model_copy(update={"insights_score_every_s": 0.5})
    off = ControlPlane(settings.model_copy(update={"insights_score_every_s": 0}), sqlite_database,
                       workers=False).start()
    try:
        assert off.dispatcher is not None and off.scoring is None  # 0 turns the loop off
    finally:
        off.stop()
    plane = ControlPlane(often, sqlite_database, workers=False).start()
    try:
        deadline = time.monotonic() + 60
        runs: list[object] = []
        while not runs and time.monotonic() < deadline:
            time.sleep(0.5)
            with sqlite_database.session() as session:
                runs = [r for r in list_runs(session, "default") if r.trigger == "schedule"]
    finally:
        plane.stop()
    assert runs, "the control plane's scoring loop did not score within 60 s"


def test_score_command_without_a_model_says_how_to_get_one(settings: Settings, sqlite_database: Database) -> None:
    code, out = _cli(settings, "score")
    assert code == 1 and "does not exist" in out and "none trained" in out
    code, out = _cli(settings, "alerts")
    assert code == 0 and "no scoring run yet" in out
    code, out = _cli(settings, "models")
    assert code == 0 and "no model trained yet" in out


def test_an_altered_model_artifact_is_refused_not_unpickled(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")

    card = ModelCard("maintenance", 0, "test", datetime.now(UTC), "0", ("a",), {}, {})
    stored = registry.save(card, {"weights": [1, 2, 3]})
    assert registry.load("maintenance")[1] == {"weights": [1, 2, 3]}
    (tmp_path / "models" / "maintenance" / str(stored.version) / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(ModelArtifactError, match="does not match the card"):
        registry.load("maintenance")
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.card("maintenance", 7)
    with pytest.raises(BadInputError, match="model name"):
        registry.versions("../keys")
    with pytest.raises(BadInputError, match="non-finite"):
        registry.save(ModelCard("maintenance", 0, "test", datetime.now(UTC), "0", (), {}, {"rmse": float("nan")}), {})
    (tmp_path / "models" / "maintenance" / "1" / CARD_FILE).write_text('{"name": 1')
    with pytest.raises(ModelArtifactError, match="not a readable model card"):
        registry.card("maintenance")


def test_training_input_errors_are_specific(settings: Settings, sqlite_database: Database, tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 garbage")
    code, out = _cli(settings, "train", "--ground-truth", str(tmp_path / "bad.parquet"))
    assert code == 1 and "not a readable component events file" in out
    code, out = _cli(settings, "train", "--ground-truth", str(tmp_path), "--horizon", "soon")
    assert code == 2 and "not a duration" in out


def test_the_cli_books_accepts_and_moves_an_appointment_and_plans_charging(
    settings: Settings, sqlite_database: Database, fleet: FleetLake, tmp_path: Path
) -> None:
    from datetime import timedelta

    from drivetrain.cloud.insights.service import store_run
    from drivetrain.cloud.insights.training import ComponentPrediction
    from drivetrain.cloud.privacy import pseudonymiser

    vin, now = fleet.vins[2], datetime.now(UTC)
    with sqlite_database.session() as session:  # a run whose one alert is a week ahead
        card = ModelCard("maintenance", 1, "maintenance.failure-window", now, "test", (), {}, {})
        store_run(session, tenant="default", card=card, threshold=0.5, trigger="command", actor="test",
                  predictions=[ComponentPrediction(pseudonymiser(session, "default")(vin), "hv_cell", 0.7,
                                                   now + timedelta(days=8), now + timedelta(days=10), now)],
                  data_window=(now - timedelta(hours=1), now), started_at=now)
    code, out = _cli(settings, "book")
    assert code == 1 and "no service centres" in out
    code, out = _cli(settings, "centre", "west", "--name", "West", "--lat", "48.14", "--lon", "11.4",
                     "--capacity", "2", "--stock", "hv-module=1")
    assert code == 0, out
    code, out = _cli(settings, "centre", "bad", "--name", "B", "--lat", "1", "--lon", "1", "--capacity", "1",
                     "--stock", "hv-module")
    assert code == 2 and "PART=UNITS" in out
    assert [c["centre_id"] for c in json.loads(_cli(settings, "centres", "--json")[1])["centres"]] == ["west"]
    code, out = _cli(settings, "book", "--json")
    assert code == 0, out
    [booked] = json.loads(out)["booked"]
    assert (booked["vin"], booked["part"], booked["centre_id"]) == (vin, "hv-module", "west")
    code, out = _cli(settings, "accept", booked["appointment_id"])
    assert code == 0 and "accepted" in out
    day = (now + timedelta(days=4)).date().isoformat()
    code, out = _cli(settings, "move", booked["appointment_id"], "--centre", "west", "--day", day)
    assert code == 0 and day in out
    code, out = _cli(settings, "move", booked["appointment_id"], "--day", "tomorrow")
    assert code == 2 and "not a date" in out
    [shown] = json.loads(_cli(settings, "appointments", "--json", "--vin", vin)[1])["appointments"]
    assert (shown["status"], shown["day"]) == ("accepted", day)
    code, out = _cli(settings, "cancel", booked["appointment_id"])
    assert code == 0 and "cancelled" in out
    code, out = _cli(settings, "cancel", booked["appointment_id"])
    assert code == 1 and "already cancelled" in out

    request = {"site": "depot", "start_at": now.isoformat(), "slot_minutes": 60, "prices_per_kwh": [0.3, 0.1, 0.1, 0.3],
               "sessions": [{"vin": vin, "capacity_kwh": 60, "soc_now": 0.5, "soc_target": 0.7,
                             "plug_in_slot": 0, "departure_slot": 4}]}
    (tmp_path / "plan.json").write_text(json.dumps(request))
    code, out = _cli(settings, "charge", str(tmp_path / "plan.json"), "--json")
    assert code == 0, out
    [schedule] = json.loads(out)["schedules"]
    assert schedule["power_kw"][0] == 0 and schedule["power_kw"][3] == 0 and schedule["command_id"]
    request["sessions"][0]["soc_target"] = 2  # type: ignore[index]
    (tmp_path / "plan.json").write_text(json.dumps(request))
    code, out = _cli(settings, "charge", str(tmp_path / "plan.json"))
    assert code == 2 and "sessions.0.soc_target" in out
