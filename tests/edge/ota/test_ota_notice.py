"""The agent's answer to an ``ota.update`` notice: preconditions and driver consent checked
before anything is fetched, every outcome an OTA report (installed, rolled back, failed,
deferred), and the report's parser refusing anything else with its own error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from ota_world import ota_world

from drivetrain.core.ota_report import OtaReport, OtaReportError
from drivetrain.edge import OtaUpdater, VehicleConditions

PARKED = VehicleConditions(parked=True, soc_pct=80)


def test_an_optional_update_waits_for_the_driver_and_a_moving_car_waits_to_park(
    tmp_path: Path,
) -> None:
    with ota_world(tmp_path) as world:
        world.assign(("BMS-001", world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")))
        conditions = [VehicleConditions(parked=False, soc_pct=80)]
        consents: list[bool] = [False]
        updater = OtaUpdater(world.primary, lambda: conditions[0],
                             driver_consents=lambda notice: consents[0])
        moving = updater.run({"rollout": "ota-1"})
        assert (moving.state, moving.detail) == ("deferred",
                                                 "update deferred: the vehicle is not parked")
        conditions[0] = VehicleConditions(parked=True, soc_pct=12)
        assert "charge 12 % is below 30 %" in updater.run({}).detail
        conditions[0] = PARKED
        waiting = updater.run({"optional": True})
        assert waiting.state == "deferred" and "consent" in waiting.detail
        assert world.ecu("BMS-001").running() is None  # nothing fetched, nothing installed
        consents[0] = True
        done = updater.run({"optional": True})
        assert (done.state, done.before, done.after) == ("installed", "", "BMS-001 2.5.0")
        assert OtaReport.from_detail(done.to_detail()) == done


def test_a_refused_update_is_reported_failed_with_the_reason(tmp_path: Path) -> None:
    with ota_world(tmp_path) as world:
        world.assign(("BMS-001", world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")))
        (world.layout.director_path / "vehicles").rename(tmp_path / "gone")  # no Director
        report = OtaUpdater(world.primary, lambda: PARKED).run({})
        assert report.state == "failed" and report.detail


@given(st.text(max_size=300))
@example('{"ota": 1, "state": "installed", "detail": 5}')
@example('{"ota": 2, "state": "installed"}')
@example('[' * 5000)
def test_any_text_is_an_ota_report_or_refused_with_the_report_error(text: str) -> None:
    try:
        report = OtaReport.from_detail(text)
    except OtaReportError as e:
        assert str(e).startswith("OTA report")
    else:
        assert OtaReport.from_detail(report.to_detail()) == report


def test_a_report_names_what_is_wrong() -> None:
    with pytest.raises(OtaReportError, match="state 'done'"):
        OtaReport.from_detail('{"ota": 1, "state": "done"}')
    with pytest.raises(OtaReportError, match="'detail'"):
        OtaReport.from_detail('{"ota": 1, "state": "failed", "detail": "' + "x" * 1001 + '"}')
    for bad in ('"soon"', "-1", "true", "1.5", str(2**63)):
        with pytest.raises(OtaReportError, match="at_ns"):
            OtaReport.from_detail('{"ota": 1, "state": "installed", "at_ns": ' + bad + "}")


def test_a_report_carries_the_vehicle_clock_of_its_outcome() -> None:
    report = OtaReport("installed", "BMS 2.5.0", "BMS 2.6.1", "parked", "ok",
                       at_ns=1_796_000_000_000_000_000)
    assert OtaReport.from_detail(report.to_detail()) == report
    assert OtaReport.from_detail('{"ota": 1, "state": "installed"}').at_ns == 0
