"""Tests that need ../shared/data carry the ``shared_data`` mark: the suite refuses to collect
one that does not (and a mark on a test that cannot skip without the data)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.conftest import pytest_collection_modifyitems


@dataclass
class _Item:
    nodeid: str
    fixturenames: tuple[str, ...]
    marks: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.marks else None


class _Config:
    """What the hook touches of pytest's config when it deselects nothing (in the fleet
    profile it keeps the empty list of embedded-only tests in the stash)."""

    def __init__(self) -> None:
        self.stash = pytest.Stash()


def _collect(*items: _Item) -> None:
    pytest_collection_modifyitems(_Config(), list(items))  # type: ignore[arg-type]


def test_a_test_using_the_shared_data_fixture_without_the_mark_is_refused() -> None:
    with pytest.raises(pytest.UsageError, match=r"t.py::test_a: uses ../shared/data but lacks"):
        _collect(_Item("t.py::test_a", ("shared_data", "tmp_path")))


def test_a_mark_without_the_fixture_is_refused() -> None:
    with pytest.raises(pytest.UsageError, match=r"t.py::test_b: marked shared_data but does"):
        _collect(_Item("t.py::test_b", ("tmp_path",), {"shared_data"}))


def test_marked_tests_with_the_fixture_and_other_tests_pass() -> None:
    _collect(_Item("t.py::test_c", ("shared_data",), {"shared_data"}),
             _Item("t.py::test_d", ("tmp_path",)))
