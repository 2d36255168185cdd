"""Custom signals: a vehicle's samples are judged against the catalog version its decoder
manifest names — a signal of the tenant's overlay is accepted from a vehicle whose manifest
names that catalog, and dead-lettered (naming the catalog checked) from any other."""

from __future__ import annotations

from pathlib import Path

from ingest_helpers import CLOUD_KEY, NOW_NS, SOC, Fleet, telemetry

import drivetrain.sim
from drivetrain.cloud.campaigns import add_catalog_version
from drivetrain.cloud.campaigns.manifests import add_manifest, create_vehicle_model
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake
from drivetrain.cloud.ingest.service import list_dead_letters
from drivetrain.cloud.twins import record_ecu_inventory
from drivetrain.core.vss import privacy_category_for

DATA = Path(drivetrain.sim.__file__).parent / "data"
WEAR = "Vehicle.Acme.Wiper.WearLevel"
OVERLAY = {WEAR: {"type": "sensor", "datatype": "float", "unit": "percent", "min": 0,
                  "max": 100, "description": "Wiper blade wear."}}


def _catalog_and_manifest(database: Database, tenant: str) -> None:
    """Catalog version 1 (the overlay) and manifest 1 of compact-bev naming it."""
    dbc, signal_map = DATA / "drivetrain_compact_bev.dbc", DATA / "drivetrain_compact_bev_vss.toml"
    with database.session() as session:
        add_catalog_version(session, tenant, "overlay", OVERLAY, actor="alice")
        create_vehicle_model(session, tenant, "compact-bev", name="Compact", actor="alice")
        add_manifest(session, tenant, "compact-bev", dbc={dbc.name: dbc.read_text()},
                     main=dbc.name, signal_map=signal_map.read_text(), key=CLOUD_KEY,
                     actor="alice", catalog_version=1)


def _in_force(database: Database, vin: str, version: str = "1") -> None:
    with database.session() as session:
        record_ecu_inventory(session, vin, {"DecoderManifest": ("compact-bev", version)})


def test_a_custom_signal_of_the_vehicles_catalog_is_accepted(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    _catalog_and_manifest(database, "acme")
    _in_force(database, fleet.vin("eu1"))
    samples = [(WEAR, NOW_NS, 12.5), (SOC, NOW_NS, 50.0)]
    report = pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"), samples)])
    assert report.samples_accepted == 2 and report.results[0].refused == {}
    rows = lake.rows()
    assert rows is not None
    stored = dict(zip(rows.column("path").to_pylist(), rows.column("category").to_pylist(),
                      strict=True))
    # Filed under the category the lake's rule gives its path (what the lake checks).
    assert stored == {WEAR: privacy_category_for(WEAR), SOC: "technical"}
    with database.session() as session:
        assert list_dead_letters(session, tenant="acme") == []


def test_a_custom_signal_breaking_its_range_is_refused_like_any_other(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    _catalog_and_manifest(database, "acme")
    _in_force(database, fleet.vin("eu1"))
    report = pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"),
                                         [(WEAR, NOW_NS, 140.0)])])
    assert report.results[0].refused == {"out_of_range": 1}


def test_a_custom_signal_not_in_the_vehicles_catalog_goes_to_dead_letters_naming_it(
    pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    _catalog_and_manifest(database, "acme")
    _in_force(database, fleet.vin("eu1"))
    other = "Vehicle.Acme.Horn.Loudness"  # in no catalog of acme
    report = pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"),
                                         [(other, NOW_NS, 3.0), (SOC, NOW_NS, 50.0)])])
    assert report.samples_accepted == 1 and report.results[0].refused == {"unknown_path": 1}
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant="acme")
    assert letter.reason == "unknown_path" and other in letter.detail
    assert ("checked against catalog version 1 of tenant 'acme', named by decoder manifest 1 "
            "of model 'compact-bev'") in letter.detail


def test_a_vehicle_whose_manifest_names_no_custom_catalog_may_not_send_custom_signals(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    _catalog_and_manifest(database, "acme")
    # eu2 reports no manifest in force; gx1 is another tenant's vehicle on its own manifest.
    _catalog_and_manifest(database, "globex")
    with database.session() as session:
        add_catalog_version(session, "globex", "overlay", {"Vehicle.Globex.X": {
            "type": "sensor", "datatype": "float", "description": "x"}}, actor="bob")
    _in_force(database, fleet.vin("gx1"))
    first = pipeline.process([telemetry(fleet.vin("eu2"), fleet.key("eu2"),
                                        [(WEAR, NOW_NS, 12.5)])])
    assert first.results[0].refused == {"unknown_path": 1}
    second = pipeline.process([telemetry(fleet.vin("gx1"), fleet.key("gx1"),
                                         [(WEAR, NOW_NS, 12.5), ("Vehicle.Globex.X", NOW_NS, 1.0)])])
    # globex's manifest 1 names its catalog version 1, which holds the same overlay, but not
    # version 2 (where Vehicle.Globex.X was added).
    assert second.samples_accepted == 1 and second.results[0].refused == {"unknown_path": 1}
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant="acme")
    assert "the standard VSS catalog (the vehicle reports no decoder manifest in force)" in (
        letter.detail)


def test_a_manifest_the_cloud_does_not_know_falls_back_to_the_standard_catalog(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    _catalog_and_manifest(database, "acme")
    _in_force(database, fleet.vin("eu1"), version="7")
    report = pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"),
                                         [(WEAR, NOW_NS, 12.5)])])
    assert report.results[0].refused == {"unknown_path": 1}
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant="acme")
    assert "decoder manifest 7 of model 'compact-bev', which the vehicle reports, is not known" in (
        letter.detail)
