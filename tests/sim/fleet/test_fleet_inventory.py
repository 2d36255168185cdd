"""ECU inventories of a simulated fleet: drawn per vehicle from a seeded distribution, written
to the ground truth, and — end to end through real edge agents, the ingest pipeline and the
twins — selectable by a fleet query on software versions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.ingest import IngestPipeline, IngestWorker, MemoryLake, TwinsReportedState
from drivetrain.cloud.twins import list_ecus, query_twins
from drivetrain.commands.sim import provision_fleet
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import InProcessTransport
from drivetrain.sim.fleet import FleetRunner, FleetSpec, RunnerOptions, plan_fleet
from drivetrain.sim.fleet.groundtruth import read_manifest, write_ground_truth
from drivetrain.sim.fleet.inventory import model_ecus

TENANT = "acme"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_each_model_lists_the_ecus_of_its_can_database() -> None:
    assert model_ecus("compact_bev")[:4] == ("VCU", "BMS", "MCU", "OBC")
    assert "MCU_R" in model_ecus("suv_bev") and "TBOX" in model_ecus("suv_bev")
    plan = plan_fleet(FleetSpec(vehicles=6, seed=1, start_utc=1_790_000_000.0))
    for vehicle in plan.vehicles:
        assert [e.name for e in vehicle.inventory] == list(model_ecus(vehicle.can_model))
        code = "CH50" if vehicle.can_model == "compact_bev" else "SU77"
        assert all(e.hardware_id and f"-{code}-HW" in e.hardware_id for e in vehicle.inventory)


def test_inventories_are_seeded_and_bms_software_splits_the_fleet() -> None:
    spec = FleetSpec(vehicles=400, seed=11, start_utc=1_790_000_000.0)
    first, again = plan_fleet(spec), plan_fleet(spec)
    assert [v.inventory for v in first.vehicles] == [v.inventory for v in again.vehicles]
    other = plan_fleet(FleetSpec(vehicles=400, seed=12, start_utc=1_790_000_000.0))
    assert [v.inventory for v in first.vehicles] != [v.inventory for v in other.vehicles]
    bms = Counter(
        e.software_version for v in first.vehicles for e in v.inventory if e.name == "BMS"
    )
    assert set(bms) == {"2.3.1", "2.4.0", "2.4.2"}
    assert 0.30 < bms["2.3.1"] / 400 < 0.50  # about 40 % still run the old release


def test_a_simulated_fleet_reports_inventories_that_a_version_query_selects_exactly(
    database: Database, tmp_path: Path
) -> None:
    with database.session() as session:
        create_tenant(session, TENANT, actor="test")
    plan = plan_fleet(FleetSpec(vehicles=12, seed=5))
    cloud = SigningKey.generate()
    identities = provision_fleet(
        database, plan.vehicles, tenant=TENANT, cloud_key=cloud, actor="test"
    )
    bus = InProcessTransport()
    pipeline = IngestPipeline(database, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0,
                              platform_key=cloud)
    worker = IngestWorker(bus, pipeline).start()
    try:
        options = RunnerOptions(agent_tick_s=1.0, batch_interval_s=2.0)
        with FleetRunner(plan, bus, identities, options) as runner:
            status = runner.run(3, speedup=0)
        bus.drain(timeout_s=10)
        assert worker.wait_idle(30)
    finally:
        worker.close()
        bus.close()
    manifest = read_manifest(write_ground_truth(tmp_path / "truth", plan, options, status))

    truth = {
        v["vin"]: {e["name"]: e["software_version"] for e in v["ecus"]}
        for v in manifest["vehicles"]
    }
    old_bms = {vin for vin, ecus in truth.items() if _version(ecus["BMS"]) < (2, 4, 0)}
    assert 0 < len(old_bms) < len(truth)  # a real subset
    with database.session() as session:
        page = query_twins(session, TENANT, 'software."BMS" < "2.4.0"', limit=100)
        newer = query_twins(session, TENANT, 'software."BMS" >= "2.4.0"', limit=100)
        first = plan.vehicles[0]
        stored = {e.name: (e.hardware_id, e.software_version) for e in
                  list_ecus(session, first.vin, tenant=TENANT)}  # fmt: skip
    assert {t.vin for t in page.twins} == old_bms and page.total == len(old_bms)
    assert {t.vin for t in newer.twins} == set(truth) - old_bms
    assert stored == {e.name: (e.hardware_id, e.software_version) for e in first.inventory}
