"""The catalog: lookup by path, filters, and the errors for unknown paths."""

from __future__ import annotations

import pytest

from drivetrain.core.errors import UnknownSignalError
from drivetrain.core.vss import (
    PRIVACY_CATEGORIES,
    BranchSpec,
    Catalog,
    SignalSpec,
    builtin_catalog,
)


def _spec(path: str, **kw: object) -> SignalSpec:
    fields: dict[str, object] = {
        "node_type": "sensor",
        "datatype": "float",
        "description": f"{path} for tests.",
        "privacy_category": "technical",
    }
    fields.update(kw)
    return SignalSpec(path=path, **fields)  # type: ignore[arg-type]


def test_builtin_catalog_has_at_least_150_signals() -> None:
    assert len(builtin_catalog()) >= 150


def test_builtin_catalog_is_loaded_once_and_shared() -> None:
    assert builtin_catalog() is builtin_catalog()


def test_known_signal_is_found_with_its_unit_and_privacy_category() -> None:
    spec = builtin_catalog().get("Vehicle.Speed")
    assert (spec.datatype, spec.unit, spec.privacy_category) == (
        "float",
        "km/h",
        "driving_behaviour",
    )
    soc = builtin_catalog().get("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current")
    assert (soc.minimum, soc.maximum, soc.unit) == (0, 100.0, "percent")


def test_unknown_path_names_the_path_and_suggests_the_closest() -> None:
    with pytest.raises(UnknownSignalError, match=r"'Vehicle\.Sped'.*did you mean 'Vehicle\.Speed'"):
        builtin_catalog().get("Vehicle.Sped")


def test_leaf_under_the_wrong_branch_suggests_the_same_leaf_elsewhere() -> None:
    with pytest.raises(UnknownSignalError, match=r"StateOfHealth"):
        builtin_catalog().get("Vehicle.Battery.StateOfHealth")


def test_branch_path_is_not_a_signal_and_the_error_says_so() -> None:
    with pytest.raises(
        UnknownSignalError, match=r"'Vehicle\.Cabin': it is a branch with \d+ signals"
    ):
        builtin_catalog().get("Vehicle.Cabin")


def test_path_with_nothing_similar_says_so() -> None:
    with pytest.raises(UnknownSignalError, match=r"no similar path"):
        builtin_catalog().get("Zeppelin.Altimeter.Qnh")


def test_non_string_path_is_an_unknown_signal() -> None:
    with pytest.raises(UnknownSignalError, match=r"not a string"):
        builtin_catalog().get(42)  # type: ignore[arg-type]


def test_membership_iteration_and_length_agree() -> None:
    catalog = builtin_catalog()
    paths = [s.path for s in catalog]
    assert paths == sorted(paths) == list(catalog.paths)
    assert len(paths) == len(catalog) == len(set(paths))
    assert "Vehicle.Speed" in catalog
    assert "Vehicle.Cabin" not in catalog
    assert 3 not in catalog


def test_prefix_filter_keeps_only_signals_below_the_branch() -> None:
    catalog = Catalog(
        [_spec("Vehicle.Cabin.X"), _spec("Vehicle.CabinX"), _spec("Vehicle.Cabin.Y.Z")]
    )
    assert [s.path for s in catalog.with_prefix("Vehicle.Cabin")] == [
        "Vehicle.Cabin.X",
        "Vehicle.Cabin.Y.Z",
    ]
    assert [s.path for s in catalog.with_prefix("Vehicle.Cabin.X")] == ["Vehicle.Cabin.X"]
    assert len(catalog.with_prefix("Vehicle.Chassis")) == 0


def test_category_filter_partitions_the_catalog() -> None:
    catalog = builtin_catalog()
    parts = {c: catalog.in_category(c) for c in PRIVACY_CATEGORIES}
    assert sum(len(p) for p in parts.values()) == len(catalog)
    assert all(s.privacy_category == c for c, p in parts.items() for s in p)
    assert all(len(p) > 0 for p in parts.values())


def test_unknown_category_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'biometric'"):
        builtin_catalog().in_category("biometric")  # type: ignore[arg-type]


def test_duplicate_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate signal path 'Vehicle.A'"):
        Catalog([_spec("Vehicle.A"), _spec("Vehicle.A")])


def test_an_overlaid_catalog_adds_and_replaces_signals_and_refuses_a_clash() -> None:
    base = Catalog([_spec("Vehicle.A.X"), _spec("Vehicle.B")])
    wider = _spec("Vehicle.B", maximum=10)
    both = base.overlaid(Catalog([wider, _spec("Vehicle.A.Y")]))
    assert both.paths == ("Vehicle.A.X", "Vehicle.A.Y", "Vehicle.B")
    assert both.get("Vehicle.B") == wider
    assert base.paths == ("Vehicle.A.X", "Vehicle.B")  # the base is unchanged
    with pytest.raises(ValueError, match="both a signal and a branch"):
        base.overlaid(Catalog([_spec("Vehicle.A.X.Z")], [BranchSpec("Vehicle.A.X", "")]))
