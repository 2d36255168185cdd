"""The scenario: every act of ``drivetrain demo``, in the order they play.

A capability adds its act by importing it here and appending it to ``SCENARIO`` — one line in
one place, so the order of the story is visible at a glance. The harness, the views and the
command never change for a new act. See docs/demo.md.
"""

from __future__ import annotations

from drivetrain.demo.act_api_secured import API_SECURED
from drivetrain.demo.act_attack_answered import ATTACK_ANSWERED
from drivetrain.demo.act_campaigns import CAMPAIGN_COLLECTS
from drivetrain.demo.act_can_roundtrip import CAN_ROUNDTRIP
from drivetrain.demo.act_charging import CHARGING_PLANNED
from drivetrain.demo.act_commerce import COMMERCE_ACT
from drivetrain.demo.act_fleet_drives import FLEET_DRIVES
from drivetrain.demo.act_lake import LAKE
from drivetrain.demo.act_maintenance import MAINTENANCE_PREDICTED
from drivetrain.demo.act_ota import UPDATE_ROLLS_OUT
from drivetrain.demo.act_privacy import PRIVACY
from drivetrain.demo.act_telemetry_lands import TELEMETRY_LANDS
from drivetrain.demo.act_twins import TWINS_CONVERGE
from drivetrain.demo.acts import Act

SCENARIO: tuple[Act, ...] = (
    CAN_ROUNDTRIP,
    API_SECURED,
    LAKE,
    FLEET_DRIVES,
    TELEMETRY_LANDS,
    TWINS_CONVERGE,
    MAINTENANCE_PREDICTED,
    CHARGING_PLANNED,
    CAMPAIGN_COLLECTS,
    PRIVACY,
    COMMERCE_ACT,
    UPDATE_ROLLS_OUT,
    ATTACK_ANSWERED,
)
