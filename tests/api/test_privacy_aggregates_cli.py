"""``drivetrain privacy aggregate`` and ``privacy budget``: the same safe release as the API,
from the command line: groups under k suppressed, budget charged and refused once spent."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from location_samples import BERLIN, MUNICH, T0, positions
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import give_consent, vehicle_pseudonym
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import load_settings

Run = Callable[..., str]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_url: Callable[[Path], str]) -> Iterator[Run]:
    """acme: 5 consenting cars in Munich and 1 in Berlin, their positions in the lake."""
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", state_url(tmp_path))
    monkeypatch.setenv("DRIVETRAIN_PRIVACY_EPSILON_BUDGET", "3")
    database = Database(state_url(tmp_path))
    database.upgrade()
    cars = {}
    rng = random.Random(9)
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        for place in [MUNICH] * 5 + [BERLIN]:
            vin = provision_vehicle(session, tenant="acme", model="compact-bev", region="EU",
                                    cloud_key=SigningKey.generate().verify_key, actor="test",
                                    rng=rng)[0].vin
            cars[vehicle_pseudonym(session, "acme", vin)] = place
            give_consent(session, tenant="acme", vin=vin, purpose="product_improvement",
                         categories=["location"], person="driver", source="driver-app",
                         actor="test")
    with Lake.open(load_settings(data_dir=tmp_path / "data")) as lake:
        lake.append("EU", "acme", positions(cars))
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    yield run
    database.dispose()


WINDOW = ("--start", T0.isoformat(), "--end", (T0 + timedelta(hours=1)).isoformat())
BASE = ("privacy", "aggregate", "--tenant", "acme", "--purpose", "product_improvement", *WINDOW)


def test_k_anonymous_release_suppresses_the_lonely_car(world: Run) -> None:
    body = json.loads(world(*BASE, "--json"))
    assert [(g["cell"], g["vehicles"]) for g in body["groups"]] == [("48.13,11.58", 5)]
    assert body["suppressed"] == 1
    table = world(*BASE)
    assert "48.13,11.58" in table and "1 group(s) released, 1 suppressed" in table
    refused = world(*BASE[:5], "maintenance", *WINDOW, code=1)
    assert "may not read location" in refused


def test_dp_release_spends_the_budget_and_is_refused_when_it_is_spent(world: Run) -> None:
    dp = ("--dp", "--epsilon", "2", "--bbox", "48.0,11.4,48.3,11.7", "--cell", "0.05")
    body = json.loads(world(*BASE, *dp, "--json"))
    assert body["method"] == "differential_privacy" and body["budget"]["left"] == 1.0
    refused = world(*BASE, *dp, code=1)
    assert "privacy budget of tenant 'acme' exhausted" in refused
    budget = json.loads(world("privacy", "budget", "--tenant", "acme", "--json"))
    assert (budget["total"], budget["spent"], budget["releases"]) == (3.0, 2.0, 1)
