"""The policy goes to the cars by itself when its file changes: only the regions whose rules
differ from what each tenant's cars hold (the last push, else the shipped policy), once per
change, and nothing after a restart when nothing changed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rig import Rig

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.audit import list_audit
from drivetrain.cloud.privacy.policy_watch import ACTOR, PolicyWatcher
from drivetrain.core.errors import BadInputError
from drivetrain.core.privacy_policy import DEFAULT_POLICY_FILE, POLICY_ENV

LATITUDE = "Vehicle.CurrentLocation.Latitude"


@pytest.fixture
def rig(database: Database) -> Iterator[Rig]:
    rig = Rig(database, regions=("EU", "US"))
    yield rig
    rig.close()


def _write(path: Path, change: dict[str, Any], stamp: int) -> None:
    """The shipped policy with ``change`` (region → its new entry), at modification time
    ``stamp`` (seconds; distinct per version, however fast the test writes)."""
    document = json.loads(DEFAULT_POLICY_FILE.read_text())
    document["regions"].update(change)
    path.write_text(json.dumps(document))
    os.utime(path, (stamp, stamp))


def test_a_changed_file_is_pushed_once_and_only_where_it_changed(
    rig: Rig, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eu, us = rig.vins
    watcher = PolicyWatcher(database)
    assert watcher.run_once() == []  # the shipped policy: the cars hold it already
    policy = tmp_path / "policy.json"
    coarse_eu = {"default_off": ["cabin"],
                 "precision": [{"signals": ["Vehicle.CurrentLocation.*"], "decimals": 1}]}
    _write(policy, {"EU": coarse_eu}, 1_000_000)
    monkeypatch.setenv(POLICY_ENV, str(policy))
    assert [p.region for p in watcher.run_once()] == ["EU", "EU"]  # each tenant, EU only
    assert watcher.run_once() == []  # unchanged since: nothing more
    rig.cycle()
    rule = rig.agents[eu].minimisation.rule_for(LATITUDE)
    assert rule is not None and rule.decimals == 1
    assert rig.agents[us].downlink.policy_record.version == -1

    _write(policy, {"EU": coarse_eu, "US": {"default_off": ["location"]}}, 2_000_000)
    assert [p.region for p in watcher.run_once()] == ["US", "US"]  # EU: as last pushed
    rig.cycle()
    assert rig.agents[us].minimisation.default_off == {"location"}
    assert PolicyWatcher(database).run_once() == []  # a restart: nothing changed
    with database.session() as session:
        audit = list_audit(session, "acme", action="privacy.policy.push")
    assert [(e.actor, e.details["regions"]) for e in audit] == [
        (ACTOR, {"EU": 1}), (ACTOR, {"US": 1})]


def test_a_bad_file_fails_the_round_and_pushes_nothing(
    rig: Rig, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.json"
    _write(policy, {"EU": {"precision": [{"signals": ["Vehicle.Speed"], "decimals": 12}]}},
           3_000_000)
    monkeypatch.setenv(POLICY_ENV, str(policy))
    with pytest.raises(BadInputError, match=r"regions\.EU\.precision\[0\]\.decimals"):
        PolicyWatcher(database).run_once()
    with database.session() as session:
        assert list_audit(session, "acme", action="privacy.policy.push") == []
