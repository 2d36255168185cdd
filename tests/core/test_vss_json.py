"""The vss-tools JSON export: load the real tree, dump it back, refuse malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivetrain.core.errors import CatalogFormatError
from drivetrain.core.vss import Catalog, SignalSpec, builtin_catalog, parse_vss_tree, vss_tree

#: Leaves (sensor + actuator + attribute) in the export at COVESA VSS @ce67f92.
REAL_EXPORT_LEAVES = 1367


@pytest.fixture(scope="module")
def real_export(shared_data: Path) -> Path:
    return shared_data / "vss" / "vss.json"


@pytest.fixture(scope="module")
def real_catalog(real_export: Path) -> Catalog:
    return Catalog.from_vss_json(real_export)


def _tree(**leaf: Any) -> dict[str, Any]:
    node = {"type": "sensor", "datatype": "float", "description": "d", **leaf}
    return {"Vehicle": {"type": "branch", "description": "v", "children": {"X": node}}}


# --- the real export ----------------------------------------------------------------------------
@pytest.mark.shared_data
def test_real_export_loads_every_leaf(real_catalog: Catalog, real_export: Path) -> None:
    def count(node: dict[str, Any]) -> int:
        if node["type"] != "branch":
            return 1
        return sum(count(child) for child in node.get("children", {}).values())

    expected = count(json.loads(real_export.read_text())["Vehicle"])
    assert len(real_catalog) == expected == REAL_EXPORT_LEAVES


@pytest.mark.shared_data
def test_real_export_known_signals_are_read_with_their_attributes(real_catalog: Catalog) -> None:
    speed = real_catalog.get("Vehicle.Speed")
    assert (speed.node_type, speed.datatype, speed.unit, speed.description) == (
        "sensor",
        "float",
        "km/h",
        "Vehicle speed.",
    )
    lat = real_catalog.get("Vehicle.CurrentLocation.Latitude")
    assert (lat.datatype, lat.minimum, lat.maximum, lat.privacy_category) == (
        "double",
        -90,
        90,
        "location",
    )
    level = real_catalog.get("Vehicle.ADAS.ActiveAutonomyLevel")
    assert level.allowed is not None and "SAE_2" in level.allowed
    precipitation = real_catalog.get("Vehicle.Exterior.PrecipitationType")
    assert precipitation.enum is not None and precipitation.enum["RAIN"] == 2
    assert real_catalog.validate("Vehicle.Exterior.PrecipitationType", "SNOW") == 4
    tire = real_catalog.get("Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Temperature")
    assert tire.deprecation is not None and tire.deprecation.startswith("v")
    assert real_catalog.get("Vehicle.Cabin.SeatPosCount").default == (2, 3)


@pytest.mark.shared_data
def test_real_export_round_trips_to_the_identical_tree(
    real_catalog: Catalog, real_export: Path
) -> None:
    assert vss_tree(real_catalog) == json.loads(real_export.read_text())


@pytest.mark.shared_data
def test_real_export_round_trips_through_a_file(real_catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "vss.json"
    real_catalog.to_vss_json(out)
    assert Catalog.from_vss_json(out) == real_catalog


@pytest.mark.shared_data
def test_real_export_gives_every_signal_a_privacy_category(real_catalog: Catalog) -> None:
    categories = {s.privacy_category for s in real_catalog}
    assert categories == {"location", "driving_behaviour", "cabin", "diagnostics", "technical"}


@pytest.mark.shared_data
def test_every_builtin_signal_is_in_the_real_export_with_the_same_definition(
    real_catalog: Catalog,
) -> None:
    mismatches = []
    for spec in builtin_catalog():
        real = real_catalog.get(spec.path)
        same = (
            spec.node_type,
            spec.datatype,
            spec.unit,
            spec.description,
            spec.allowed,
            spec.enum,
        ) == (real.node_type, real.datatype, real.unit, real.description, real.allowed, real.enum)
        if not same:
            mismatches.append(spec.path)
    assert mismatches == []


@pytest.mark.shared_data
def test_builtin_bounds_equal_the_standard_or_are_marked_ours_and_never_looser(
    real_catalog: Catalog,
) -> None:
    for spec in builtin_catalog():
        real = real_catalog.get(spec.path)
        if spec.bounds_source == "vss":
            assert (spec.minimum, spec.maximum) == (real.minimum, real.maximum), spec.path
            continue
        assert (spec.minimum, spec.maximum) != (real.minimum, real.maximum), spec.path
        if real.minimum is not None:
            assert spec.minimum is not None and spec.minimum >= real.minimum, spec.path
        if real.maximum is not None:
            assert spec.maximum is not None and spec.maximum <= real.maximum, spec.path


@pytest.mark.shared_data
def test_builtin_privacy_categories_follow_the_rule_as_the_export_loader_applies_it(
    real_catalog: Catalog,
) -> None:
    for spec in builtin_catalog():
        assert spec.privacy_category == real_catalog.get(spec.path).privacy_category, spec.path


# --- dumping our own catalogs -------------------------------------------------------------------
def test_builtin_catalog_round_trips_keeping_our_bounds_and_branch_text(tmp_path: Path) -> None:
    out = tmp_path / "builtin.json"
    builtin_catalog().to_vss_json(out)
    again = Catalog.from_vss_json(out)
    assert again == builtin_catalog()
    tree = json.loads(out.read_text())
    assert tree["Vehicle"]["children"]["AverageSpeed"]["bounds_source"] == "drivetrain"


def test_privacy_category_override_is_written_and_read_back() -> None:
    spec = SignalSpec(
        path="Vehicle.Speed",
        node_type="sensor",
        datatype="float",
        description="d",
        privacy_category="technical",
    )
    tree = vss_tree(Catalog([spec]))
    assert tree["Vehicle"]["children"]["Speed"]["privacy_category"] == "technical"
    assert tree["Vehicle"]["description"] == ""  # no branch text known: written empty
    assert parse_vss_tree(tree).get("Vehicle.Speed").privacy_category == "technical"


def test_unknown_vss_attributes_are_kept_through_a_round_trip() -> None:
    tree = _tree(uuid="1234", fka=["Vehicle.Y"])
    catalog = parse_vss_tree(tree)
    assert catalog.get("Vehicle.X").extra == {"uuid": "1234", "fka": ["Vehicle.Y"]}
    assert vss_tree(catalog) == tree


# --- malformed input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (
            {"datatype": "float32"},
            r"node Vehicle\.X: field 'datatype' is 'float32'; expected a VSS datatype",
        ),
        ({"datatype": "Types.Struct"}, r"field 'datatype' is 'Types.Struct'"),
        ({"min": "0"}, r"node Vehicle\.X: field 'min' is '0'; expected a number"),
        ({"max": True}, r"field 'max' is True; expected a number"),
        ({"min": 5, "max": 1}, r"node Vehicle\.X: .*min 5 > max 1"),
        ({"allowed": "A,B"}, r"field 'allowed' is 'A,B'; expected a non-empty list"),
        ({"enum": {"A": "one"}}, r"field 'enum' .* expected an object mapping names to integers"),
        ({"unit": 3}, r"field 'unit' is 3; expected a string"),
        (
            {"description": None},
            r"field 'description' is None; expected a string \(the field is required\)",
        ),
        ({"type": "struct"}, r"field 'type' is 'struct'; expected one of branch, sensor"),
        ({"privacy_category": "secret"}, r"field 'privacy_category' is 'secret'"),
        ({"datatype": "string", "min": 0}, r"min/max given for non-numeric datatype 'string'"),
        ({"children": {}}, r"field 'children' .* expected no children on a sensor"),
    ],
)
def test_malformed_leaf_names_the_file_node_and_field(leaf: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogFormatError, match=rf"^broken\.json: .*{message}"):
        parse_vss_tree(_tree(**leaf), source="broken.json")


def test_missing_datatype_is_refused() -> None:
    tree = _tree()
    del tree["Vehicle"]["children"]["X"]["datatype"]
    with pytest.raises(CatalogFormatError, match=r"node Vehicle\.X: field 'datatype' is None"):
        parse_vss_tree(tree, source="t.json")


def test_branch_with_children_that_are_not_an_object_is_refused() -> None:
    tree = {"Vehicle": {"type": "branch", "description": "v", "children": ["Speed"]}}
    with pytest.raises(CatalogFormatError, match=r"node Vehicle: field 'children'"):
        parse_vss_tree(tree, source="t.json")


def test_node_that_is_not_an_object_is_refused() -> None:
    tree = {"Vehicle": {"type": "branch", "description": "v", "children": {"Speed": 3}}}
    with pytest.raises(
        CatalogFormatError, match=r"node Vehicle\.Speed: expected an object, got int"
    ):
        parse_vss_tree(tree, source="t.json")


def test_top_level_that_is_not_a_tree_is_refused() -> None:
    with pytest.raises(CatalogFormatError, match=r"t\.json: expected a JSON object of root nodes"):
        parse_vss_tree([1, 2], source="t.json")


def test_file_that_is_not_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Vehicle":\n  {"type": }\n}')
    with pytest.raises(CatalogFormatError, match=r"bad\.json: not JSON at line 2 column 12"):
        Catalog.from_vss_json(bad)


def test_missing_file_is_a_catalog_format_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogFormatError, match=r"nope\.json: cannot read VSS JSON export"):
        Catalog.from_vss_json(tmp_path / "nope.json")
