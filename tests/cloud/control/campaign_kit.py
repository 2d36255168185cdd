"""Campaign definitions and helpers shared by the campaign tests."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from rig import Rig, utc

from drivetrain.cloud.campaigns import CampaignRunner, campaign_vehicles

BRAKE = "Vehicle.Acceleration.Longitudinal"
OLD_BMS = 'software."BMS" < "2.4.0"'
HARSH_BRAKE: dict[str, Any] = {
    "campaign": {
        "id": "harsh-brake",
        "signals": ["Vehicle.Speed", BRAKE],
        "period_ms": None,
        "priority": 5,
        "triggers": [{"name": "harsh-brake", "expression": f"{BRAKE} < -4",
                      "pre_s": 10, "post_s": 10}],
    },
    "targeting": {"query": OLD_BMS},
    "description": "10 s around harsh brakes on vehicles with an old BMS",
}


def definition(**changes: Any) -> dict[str, Any]:
    """The harsh-brake campaign with top-level fields replaced (``campaign=`` merges)."""
    out = copy.deepcopy(HARSH_BRAKE)
    for key, value in changes.items():
        if key == "campaign":
            out["campaign"].update(value)
        else:
            out[key] = value
    return out


def run_round(rig: Rig, now: datetime | None = None) -> None:
    """Campaign runner, dispatcher, vehicles, dispatcher: one full exchange."""
    CampaignRunner(rig.database).run_once(now)
    rig.cycle(now)


def states(rig: Rig, campaign_id: str = "harsh-brake") -> dict[str, str]:
    with rig.database.session() as session:
        return {v.vin: v.state for v in campaign_vehicles(session, campaign_id, tenant="acme")}


def later(seconds: float) -> datetime:
    return utc() + timedelta(seconds=seconds)
