"""A decoder manifest whose DBC→VSS map decodes into the tenant's custom signals carries their
catalog entries (signed with it), so the vehicle — which knows only the standard catalog —
accepts it, decodes the custom signal from CAN, and the sample lands in the lake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from campaign_kit import run_round, states
from rig import CLOUD_KEY, Rig

import drivetrain.sim
from drivetrain.cloud.campaigns import add_catalog_version, approve_campaign, create_campaign
from drivetrain.cloud.campaigns.manifests import (
    add_manifest,
    create_vehicle_model,
    publish_manifest,
)
from drivetrain.cloud.commands import get_job
from drivetrain.cloud.infra import Database
from drivetrain.core.can import DecoderManifest
from drivetrain.core.can.frames import FrameBatch
from drivetrain.core.errors import BadInputError, CatalogFormatError
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge import Campaign
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer
from drivetrain.edge.can_input import CanDecoding

DATA = Path(drivetrain.sim.__file__).parent / "data"
COMPACT = ("drivetrain_compact_bev.dbc", "drivetrain_compact_bev_vss.toml")
WEAR = "Vehicle.Acme.Wiper.WearLevel"
OVERLAY = {WEAR: {"type": "sensor", "datatype": "float", "unit": "percent", "min": 0,
                  "max": 100, "description": "Wiper blade wear."}}
WIPER_DBC = """VERSION ""

NS_ :

BS_:

BU_: BCM

BO_ 1952 AcmeWiper: 8 BCM
 SG_ WearLevel : 0|8@1+ (0.5,0) [0|100] "%" Vector__XXX

"""
MAP = f"""version = 1

[[signals]]
can = "ESP_Speed.VehicleSpeed"
vss = "Vehicle.Speed"

[[signals]]
can = "AcmeWiper.WearLevel"
vss = "{WEAR}"
"""


@pytest.fixture
def fleet(database: Database) -> Iterator[Rig]:
    """Two compact-bev cars of acme that decode CAN (the standard catalog only)."""
    made = Rig(database, ["EU", "EU"])
    for vin, agent in list(made.agents.items()):
        agent.stop()
        decoding = CanDecoding.load(DATA / COMPACT[0], DATA / COMPACT[1], made.catalog)
        made.agents[vin] = EdgeAgent(agent.identity, made.bus, MemoryBuffer(), can=decoding)
        made.agents[vin].start()
    try:
        yield made
    finally:
        made.close()


def _custom_manifest(rig: Rig) -> DecoderManifest:
    compact = (DATA / COMPACT[0]).read_text()
    with rig.database.session() as session:
        add_catalog_version(session, "acme", "overlay", OVERLAY, actor="alice")
        create_vehicle_model(session, "acme", "compact-bev", name="Compact", actor="alice")
        info = add_manifest(session, "acme", "compact-bev",
                            dbc={"acme_wiper.dbc": _merged_dbc(compact)},
                            main="acme_wiper.dbc", signal_map=MAP, key=CLOUD_KEY,
                            actor="alice", catalog_version=1)
    return info.manifest


def _merged_dbc(compact: str) -> str:
    """The compact DBC with the wiper message added (one file)."""
    message = WIPER_DBC[WIPER_DBC.index("BO_ "):]
    return compact.rstrip() + "\n\n" + message


def _wiper_frames(n: int, raw: int) -> FrameBatch:
    data = np.zeros((n, 8), np.uint8)
    data[:, 0] = raw
    return FrameBatch(
        timestamp_s=np.arange(n) * 0.1,
        frame_id=np.full(n, 1952, np.uint32),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=data,
    )


def test_a_custom_signal_decoded_from_can_on_the_vehicle_lands_in_the_lake(fleet: Rig) -> None:
    manifest = _custom_manifest(fleet)
    assert manifest.catalog is not None
    carried = manifest.catalog_over(builtin_catalog())
    assert WEAR in carried and carried.get(WEAR).unit == "percent"
    # Only the custom entry travels, not the standard signals the map also decodes.
    assert len(carried) == len(builtin_catalog()) + 1
    with fleet.database.session() as session:
        job = publish_manifest(session, "acme", "compact-bev", 1, actor="alice")
    fleet.cycle()
    fleet.vehicles_act()  # the inventory (manifest 1, catalog 1) reaches the twins
    with fleet.database.session() as session:
        done = get_job(session, job.job_id, tenant="acme")
    assert done.counts.succeeded == 2, done
    vin = fleet.vins[0]
    agent = fleet.agents[vin]
    assert agent.can is not None and WEAR in agent.can.paths
    # A cloud campaign naming the custom signal is accepted by the vehicles now.
    with fleet.database.session() as session:
        create_campaign(session, {
            "campaign": {"id": "wear", "signals": [WEAR], "period_ms": 100,
                         "priority": 5},
            "targeting": {"query": 'model == "compact-bev"'}}, tenant="acme", actor="alice")
    with fleet.database.session() as session:
        approve_campaign(session, "wear", tenant="acme", actor="bob")
    run_round(fleet)
    assert set(states(fleet, "wear").values()) == {"active"}
    now = time.time_ns()
    agent.tick(now, frames=_wiper_frames(10, 50), frames_offset_ns=now)
    agent.flush(now + 2_000_000_000)
    fleet.vehicles_act(now + 3_000_000_000)
    rows = fleet.pipeline.lake.rows()  # type: ignore[attr-defined]
    assert rows is not None
    wear = [(v, c) for p, v, c in zip(rows.column("path").to_pylist(),
                                      rows.column("value").to_pylist(),
                                      rows.column("campaign").to_pylist(), strict=True)
            if p == WEAR]
    assert wear and {v for v, _ in wear} == {25.0}  # 50 raw x 0.5 %
    assert "wear" in {c for _, c in wear}


def test_without_the_carried_entries_the_vehicle_refuses_the_map() -> None:
    standard = builtin_catalog()
    manifest = DecoderManifest.from_dict({
        "model": "compact-bev", "version": 1, "main": "w.dbc",
        "dbc": {"w.dbc": WIPER_DBC}, "signal_map": MAP.split("[[signals]]", 2)[0]
        + "[[signals]]" + MAP.split("[[signals]]", 2)[2], "catalog_version": 1,
    })
    with pytest.raises(BadInputError, match="Acme"):
        CanDecoding.from_manifest(manifest, manifest.catalog_over(standard))
    with pytest.raises(BadInputError, match="Acme"):
        Campaign.from_dict({"id": "wear", "version": 1, "signals": [WEAR], "period_ms": 1000},
                           standard)


def test_malformed_carried_entries_are_a_named_format_error() -> None:
    base = {"model": "compact-bev", "version": 1, "main": "w.dbc", "dbc": {"w.dbc": WIPER_DBC},
            "signal_map": MAP}
    with pytest.raises(BadInputError, match="field 'catalog'"):
        DecoderManifest.from_dict({**base, "catalog": ["not", "a", "tree"]})
    bad = DecoderManifest.from_dict({**base, "catalog": {"Vehicle": {"type": "nonsense"}}})
    with pytest.raises(CatalogFormatError):
        bad.catalog_over(builtin_catalog())
    # A signal where the standard catalog has a branch clashes.
    clash = DecoderManifest.from_dict({**base, "catalog": {"Vehicle": {
        "type": "branch", "description": "", "children": {"Cabin": {
            "type": "sensor", "datatype": "float", "description": "x"}}}}})
    with pytest.raises(CatalogFormatError, match="field 'catalog'"):
        clash.catalog_over(builtin_catalog())
