"""The control plane's parsers of untrusted input never fail with anything but their own
error (Hypothesis): campaign definitions, rollout policies, decoder manifests, catalog
overlays, and status events arriving from the broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.cloud.campaigns.catalogs import build_catalog
from drivetrain.cloud.campaigns.definition import parse_spec
from drivetrain.cloud.commands import RolloutPolicy
from drivetrain.cloud.infra.bus import StatusEvent
from drivetrain.core.can import DecoderManifest
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import builtin_catalog

CATALOG = builtin_catalog()
NOW = datetime(2026, 1, 1, tzinfo=UTC)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                    st.floats(allow_nan=True), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)
KEYS = ["campaign", "targeting", "start_at", "end_at", "dimensions", "destinations",
        "description", "id", "signals", "period_ms", "triggers", "query", "vins",
        "max_vehicles", "upload", "max_samples_per_signal", "rate_per_min",
        "maintenance_windows", "timeout_s", "freshness_s", "model", "version", "dbc", "main",
        "signal_map", "type", "children", "datatype"]
documents = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8)


@settings(max_examples=120, deadline=None)
@given(documents)
@example({"campaign": {"id": "x", "signals": ["Vehicle.Speed"]},
          "targeting": {"query": "", "max_vehicles": 10**40}})
@example({"campaign": {"id": "x", "signals": ["Vehicle.Speed"],
                       "upload": [{"name": "a", "signals": ["*"], "when": "(" * 500}]},
          "targeting": {"vins": [None]}})
def test_a_campaign_definition_is_accepted_or_refused_as_bad_input(data: dict[str, Any]) -> None:
    try:
        parse_spec(data, CATALOG, now=NOW)
    except BadInputError:
        pass


@settings(max_examples=150, deadline=None)
@given(documents)
@example({"maintenance_windows": [{"days": ["mon"], "start": "24:00", "end": "01:00"}]})
@example({"rate_per_min": float("inf"), "growth_factor": 2})
@example({"freshness_s": None})
def test_a_rollout_policy_is_accepted_or_refused_as_bad_input(data: dict[str, Any]) -> None:
    try:
        RolloutPolicy.from_dict(data)
    except BadInputError:
        pass


@settings(max_examples=100, deadline=None)
@given(documents)
@example({"model": "m", "version": 1, "main": "a.dbc", "dbc": {"a.dbc": 3}, "signal_map": "x"})
def test_a_decoder_manifest_is_read_or_refused_as_bad_input(data: dict[str, Any]) -> None:
    try:
        DecoderManifest.from_dict(data)
    except BadInputError:
        pass


VSS_KEYS = ["Vehicle", "Acme", "Cabin", "Speed", "type", "children", "datatype", "unit",
            "min", "max", "description", "allowed", "default"]
vss_nodes = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(VSS_KEYS), inner, max_size=5)),
    max_leaves=25)


@settings(max_examples=100, deadline=None)
@given(vss_nodes)
@example({"Vehicle": {"type": "branch", "description": "", "children": {"Speed": {
    "type": "branch", "description": "", "children": {}}}}})
@example({"Vehicle": {"type": "branch", "description": "", "children": {"Acme": {
    "type": "sensor", "datatype": "float", "description": "x", "min": 10**400}}}})
def test_the_catalog_a_manifest_carries_is_read_or_refused_as_bad_input(tree: Any) -> None:
    """What a vehicle does with a manifest's ``catalog`` field: read it, lay it over its own."""
    try:
        manifest = DecoderManifest.from_dict({"model": "m", "version": 1, "main": "a.dbc",
                                              "dbc": {"a.dbc": ""}, "signal_map": "x",
                                              "catalog": tree})
        manifest.catalog_over(CATALOG)
    except BadInputError:
        pass


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.text(max_size=30), json_values, max_size=4))
@example({"Vehicle.A..B": {"type": "sensor"}})
@example({"Vehicle": {"type": "branch", "children": {"X": {"type": "sensor",
                                                           "datatype": "float"}}}})
def test_a_catalog_overlay_is_merged_or_refused_as_bad_input(document: dict[str, Any]) -> None:
    try:
        build_catalog("overlay", document, None, "overlay")
    except BadInputError:
        pass


@settings(max_examples=100, deadline=None)
@given(json_values)
@example({"domain": "jobs", "kind": "x", "tenant": "t", "subject": "s", "at": "not a time",
          "origin": "o"})
def test_a_status_event_from_the_broker_is_read_or_refused(data: Any) -> None:
    try:
        StatusEvent.from_dict(data)
    except (ValueError, TypeError):
        pass


def test_a_null_policy_field_takes_its_default() -> None:
    policy = RolloutPolicy.from_dict({"freshness_s": None, "max_retries": None,
                                      "timeout_s": None})
    assert policy.freshness_s == 300 and policy.max_retries == 0 and policy.timeout_s is None
