"""Vehicle models and decoder manifests: a manifest is checked and signed before it is stored;
publishing it switches the model's vehicles to it without a restart, and each twin shows the
version in force."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from rig import CLOUD_KEY, Rig

import drivetrain.sim
from drivetrain.cloud.campaigns.manifests import (
    add_manifest,
    create_vehicle_model,
    list_manifests,
    publish_manifest,
)
from drivetrain.cloud.commands import get_job
from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import get_twin
from drivetrain.core.errors import ConflictError, SignalMapError
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer
from drivetrain.edge.can_input import CanDecoding

DATA = Path(drivetrain.sim.__file__).parent / "data"
COMPACT = ("drivetrain_compact_bev.dbc", "drivetrain_compact_bev_vss.toml")
SUV = ("drivetrain_suv_bev.dbc", "drivetrain_suv_bev_vss.toml")


@pytest.fixture
def fleet(database: Database) -> Iterator[Rig]:
    """Two compact-bev cars of acme (and globex's one) that decode CAN with the compact DBC."""
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


def _manifest(rig: Rig, files: tuple[str, str], **changes: object):  # type: ignore[no-untyped-def]
    dbc, signal_map = (DATA / f for f in files)
    arguments: dict[str, object] = {
        "dbc": {dbc.name: dbc.read_text()}, "main": dbc.name,
        "signal_map": signal_map.read_text(), "key": CLOUD_KEY, "actor": "alice",
    }
    arguments.update(changes)
    with rig.database.session() as session:
        return add_manifest(session, "acme", "compact-bev", **arguments)  # type: ignore[arg-type]


def test_a_published_manifest_switches_the_vehicles_without_a_restart(fleet: Rig) -> None:
    with fleet.database.session() as session:
        create_vehicle_model(session, "acme", "compact-bev", name="Compact hatch", actor="alice")
    info = _manifest(fleet, SUV)
    assert info.version == 1 and info.signals > 10
    CLOUD_KEY.verify_key.verify(base64.b64decode(info.signature),
                                info.manifest.canonical_json())
    before = {vin: agent.can for vin, agent in fleet.agents.items()}
    suv_signals = {m.source for m in CanDecoding.load(DATA / SUV[0], DATA / SUV[1],
                                                      fleet.catalog).signal_map.mappings}
    with fleet.database.session() as session:
        job = publish_manifest(session, "acme", "compact-bev", 1, actor="alice")
    assert job.counts.queued == 2 and job.origin == "decoder"
    fleet.cycle()
    fleet.vehicles_act()  # the inventory report reaches the twins
    with fleet.database.session() as session:
        done = get_job(session, job.job_id, tenant="acme")
        twins = [get_twin(session, vin, tenant="acme") for vin in fleet.vins]
    assert done.counts.succeeded == 2 and done.status == "finished"
    for vin in fleet.vins:
        agent = fleet.agents[vin]
        assert agent.can is not None and agent.can is not before[vin]
        assert {m.source for m in agent.can.signal_map.mappings} == suv_signals
        assert agent.downlink.manifest_version == 1
    for twin in twins:
        assert {e.name: e.software_version for e in twin.ecus}["DecoderManifest"] == "1"


def test_a_manifest_whose_map_does_not_fit_its_dbc_is_refused_and_not_stored(
    fleet: Rig,
) -> None:
    with fleet.database.session() as session:
        create_vehicle_model(session, "acme", "compact-bev", name="Compact hatch", actor="alice")
    mismatched = (SUV[0], COMPACT[1])  # the compact map names signals the SUV DBC lacks
    with pytest.raises(SignalMapError):
        _manifest(fleet, mismatched)
    with fleet.database.session() as session:
        assert list_manifests(session, "acme", "compact-bev") == []


def test_an_older_manifest_is_not_published_over_a_newer_one(fleet: Rig) -> None:
    with fleet.database.session() as session:
        create_vehicle_model(session, "acme", "compact-bev", name="Compact hatch", actor="alice")
    _manifest(fleet, SUV)
    _manifest(fleet, COMPACT)
    with fleet.database.session() as session:
        publish_manifest(session, "acme", "compact-bev", 2, actor="alice")
    with fleet.database.session() as session, pytest.raises(ConflictError):
        publish_manifest(session, "acme", "compact-bev", 1, actor="alice")


def test_the_manifest_in_force_survives_a_restart_and_the_twin_still_shows_it(
    fleet: Rig,
) -> None:
    with fleet.database.session() as session:
        create_vehicle_model(session, "acme", "compact-bev", name="Compact hatch", actor="alice")
    _manifest(fleet, SUV)
    with fleet.database.session() as session:
        publish_manifest(session, "acme", "compact-bev", 1, actor="alice")
    fleet.cycle()
    vin = fleet.vins[0]
    suv_signals = {m.source for m in CanDecoding.load(DATA / SUV[0], DATA / SUV[1],
                                                      fleet.catalog).signal_map.mappings}
    old = fleet.agents[vin]
    old.stop()
    # Restarted with the files it was first started with: the stored manifest wins.
    restarted = EdgeAgent(old.identity, fleet.bus, old.buffer,
                          can=CanDecoding.load(DATA / COMPACT[0], DATA / COMPACT[1],
                                               fleet.catalog))
    fleet.agents[vin] = restarted
    restarted.start()
    assert restarted.downlink.manifest_version == 1
    assert restarted.can is not None
    assert {m.source for m in restarted.can.signal_map.mappings} == suv_signals
    assert {e.name: e.software_version for e in restarted.inventory}["DecoderManifest"] == "1"
    fleet.vehicles_act()  # the inventory reported at start-up reaches the twin
    with fleet.database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
    assert {e.name: e.software_version for e in twin.ecus}["DecoderManifest"] == "1"
    assert restarted.stats().acks_sent == {}  # nothing re-applied after the restart
