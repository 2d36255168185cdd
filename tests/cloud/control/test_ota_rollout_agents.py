"""A stored rollout reaching real edge agents: the ``ota.update`` notice travels as a signed
command of the dispatcher's job, each agent runs its Uptane primary by itself against the
repositories over HTTP (full verification, A/B install, rollback on a failed health check),
checks its preconditions, and answers with a signed acknowledgement the platform turns into
the vehicle's rollout state and UN R156 record."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ota_kit import ota_car
from rig import Rig

from drivetrain.cloud.commands import list_deliveries
from drivetrain.cloud.ota import OtaLayout, RolloutSpec, WavePolicy, service
from drivetrain.cloud.ota.serve import BackgroundServer
from drivetrain.cloud.twins import list_ecus
from drivetrain.core.ota_report import MANIFEST_EVENT, OtaReport
from drivetrain.core.wire import VehicleEvent
from drivetrain.edge import AbEcu, VehicleConditions
from drivetrain.sim.firmware import FirmwareBehaviour, build_firmware, simulated_health_check

GOOD_HW, BAD_HW = "BMS-HW3", "BMS-HW4"


@pytest.fixture
def fleet(rig: Rig, tmp_path: Path) -> Iterator[tuple[Rig, OtaLayout, dict[str, bool]]]:
    """acme's three vehicles with OTA agents: the first two on hardware GOOD_HW, the third
    on BAD_HW (whose build fails its self-test); ``parked`` says which are parked."""
    layout = OtaLayout.under(tmp_path / "platform")
    layout.init({"root": (1, 1)})
    for hw, passes in ((GOOD_HW, True), (BAD_HW, False)):
        layout.images().add_image(
            f"bms/{hw}/bms-2.6.1.bin",
            build_firmware(FirmwareBehaviour("bms", "2.6.1", passes), 4096), hardware_id=hw,
            release_counter=7, version="2.6.1")
    parked = {vin: True for vin in rig.vins}
    with BackgroundServer(layout) as server:
        for n, vin in enumerate(rig.vins):
            hw = BAD_HW if n == 2 else GOOD_HW
            ota_car(rig, layout, server.url, vin, tmp_path / "cars" / vin,
                    ecu=AbEcu("BMS", hw, tmp_path / "cars" / vin / "bms",
                              simulated_health_check),
                    running="2.5.0", conditions=lambda v=vin: VehicleConditions(parked[v], 80.0),
                    # the third car's BMS reports are signed with a key nobody registered
                    unregistered_ecu_key=n == 2)
        yield rig, layout, parked


def test_agents_act_on_the_notice_and_their_answers_become_rollout_states(
    fleet: tuple[Rig, OtaLayout, dict[str, bool]],
) -> None:
    rig, layout, parked = fleet
    good, moving, bad = rig.vins
    parked[moving] = False
    spec = RolloutSpec("bms-2.6.1", "BMS", (f"bms/{GOOD_HW}/bms-2.6.1.bin",
                                            f"bms/{BAD_HW}/bms-2.6.1.bin"),
                       policy=WavePolicy(waves=(1.0,)))
    with rig.database.session() as session:
        rid = service.create_rollout(session, layout, spec, tenant="acme",
                                     actor="engineer").rollout_id
        job_id = service.approve_rollout(session, layout, rid, tenant="acme",
                                         actor="manager").job_id
    assert job_id is not None
    rig.cycle()  # notices out, agents update by themselves and answer, answers settled
    with rig.database.session() as session:
        service.sync_rollout(session, rid, tenant="acme")
        states = {v.vin: v for v in service.list_vehicles(session, rid, tenant="acme")}
        records = {vin: r for _, r in service.update_records(session, tenant="acme",
                                                             rollout_id=rid)
                   for vin in [r.vin]}
        deliveries = {d.vin: d for d in list_deliveries(session, job_id, tenant="acme",
                                                        limit=10).deliveries}
        ecus = {vin: list_ecus(session, vin, tenant="acme")[0].software_version
                for vin in rig.vins}
    assert states[good].state == "installed"
    assert records[good].software_after == "BMS 2.6.1"
    assert records[good].preconditions.startswith("parked yes, charge 80 %")
    assert states[bad].state == "rolled_back" and "self-test" in states[bad].detail
    assert records[bad].result == "rolled_back"
    assert states[moving].state == "pending" and "not parked" in states[moving].detail
    assert moving not in records
    assert ecus == {good: "2.6.1", moving: "2.5.0", bad: "2.5.0"}
    # the deferred vehicle's notice is sent again later; the rolled-back one's is not
    assert deliveries[moving].state == "queued"
    assert OtaReport.from_detail(deliveries[moving].detail or "").state == "deferred"
    assert deliveries[bad].state == "cancelled"  # its retry withdrawn: the outcome is final
    assert rig.agents[good].downlink.ota is not None
    running = rig.agents[good].downlink.ota.primary.ecus["BMS"].running()
    assert running is not None and running.version == "2.6.1"


def _rollout(rig: Rig, layout: OtaLayout) -> str:
    spec = RolloutSpec("bms-2.6.1", "BMS", (f"bms/{GOOD_HW}/bms-2.6.1.bin",
                                            f"bms/{BAD_HW}/bms-2.6.1.bin"),
                       policy=WavePolicy(waves=(1.0,)))
    with rig.database.session() as session:
        rid = service.create_rollout(session, layout, spec, tenant="acme",
                                     actor="engineer").rollout_id
        service.approve_rollout(session, layout, rid, tenant="acme", actor="manager")
    return rid


def _vehicles(rig: Rig, rid: str) -> dict[str, service.RolloutVehicle]:
    with rig.database.session() as session:
        service.sync_rollout(session, rid, tenant="acme")
        return {v.vin: v for v in service.list_vehicles(session, rid, tenant="acme")}


def test_forged_version_manifest_sent_over_the_link_is_refused(
    fleet: tuple[Rig, OtaLayout, dict[str, bool]],
) -> None:
    rig, layout, _ = fleet
    good, _, forger = rig.vins
    rid = _rollout(rig, layout)
    rig.cycle()
    _flush(rig)  # the manifests go out with the agents' next flush
    states = _vehicles(rig, rid)
    assert "version manifest refused" not in states[good].detail
    assert "version manifest refused" in states[forger].detail
    assert "not signed by the expected key" in states[forger].detail
    # a manifest replayed (a counter not above the last accepted one) is refused too
    ota = rig.agents[good].downlink.ota
    assert ota is not None
    old = ota.manifest(counter=1)
    rig.agents[good].outbox.events.append(VehicleEvent(MANIFEST_EVENT, rig_now(), "info",
                                                       {"manifest": old}))
    _flush(rig)
    assert "version manifest refused" in _vehicles(rig, rid)[good].detail


def test_a_verified_manifest_confirms_an_install_whose_answer_was_lost(
    fleet: tuple[Rig, OtaLayout, dict[str, bool]],
) -> None:
    rig, layout, _ = fleet
    good = rig.vins[0]
    rid = _rollout(rig, layout)
    rig.dispatcher.run_once()
    rig.bus.drain(10)
    rig.agents[good].tick(rig_now())  # installs and acknowledges ...
    rig.bus.drain(10)
    rig.uplink[:] = [m for m in rig.uplink if not m.topic.endswith("/ack")]  # ... ack lost
    _flush(rig)
    states = _vehicles(rig, rid)
    assert states[good].state == "installed"
    assert states[good].detail.startswith("confirmed by the signed version manifest")
    with rig.database.session() as session:
        assert list_ecus(session, good, tenant="acme")[0].software_version == "2.6.1"


def _flush(rig: Rig) -> None:
    for agent in rig.agents.values():
        agent.flush(rig_now())
    rig.vehicles_act()  # the uplink sends what was sealed


def rig_now() -> int:
    return time.time_ns()
