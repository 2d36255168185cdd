"""``Catalog``: the VSS signals a deployment knows, looked up by path and used to check values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import UnknownSignalError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory
from drivetrain.core.vss.spec import BranchSpec, SignalSpec
from drivetrain.core.vss.validation import normalise_value, valid_mask


class Catalog:
    """An immutable set of ``SignalSpec`` keyed by VSS path, plus the branches above them.

    Iteration yields the signals in path order. Two catalogs are equal when they hold equal
    signals and equal branches.
    """

    __slots__ = ("_branches", "_paths", "_signals")

    def __init__(self, signals: Iterable[SignalSpec], branches: Iterable[BranchSpec] = ()) -> None:
        """Build a catalog.

        Raises:
            ValueError: two signals share a path, or a path is both a signal and a branch
                (programmer error; file loaders report ``CatalogFormatError`` before this).
        """
        by_path: dict[str, SignalSpec] = {}
        for spec in signals:
            if spec.path in by_path:
                raise ValueError(f"duplicate signal path {spec.path!r} in catalog")
            by_path[spec.path] = spec
        self._paths: tuple[str, ...] = tuple(sorted(by_path))
        self._signals: dict[str, SignalSpec] = {p: by_path[p] for p in self._paths}
        self._branches: dict[str, BranchSpec] = {b.path: b for b in branches}
        clash = self._signals.keys() & self._branches.keys()
        if clash:
            raise ValueError(f"paths are both a signal and a branch: {sorted(clash)}")

    # --- collection protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._signals)

    def __iter__(self) -> Iterator[SignalSpec]:
        return iter(self._signals.values())

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and path in self._signals

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalog):
            return NotImplemented
        return self._signals == other._signals and self._branches == other._branches

    __hash__ = None  # type: ignore[assignment]  # equality is by content; not meant as a key

    def __repr__(self) -> str:
        return f"Catalog({len(self)} signals)"

    @property
    def paths(self) -> tuple[str, ...]:
        """Every signal path, sorted."""
        return self._paths

    @property
    def branches(self) -> Mapping[str, BranchSpec]:
        """The branch nodes known to this catalog (description and comment), by path."""
        return dict(self._branches)

    # --- lookup ----------------------------------------------------------------------------------
    def get(self, path: str) -> SignalSpec:
        """The signal at ``path`` (e.g. ``Vehicle.Speed``).

        Raises:
            UnknownSignalError: ``path`` is not a signal of this catalog; the message names it,
                says when it is a branch, and suggests the closest known paths.
        """
        try:
            return self._signals[path]
        except (KeyError, TypeError):
            raise UnknownSignalError(self._unknown_message(path)) from None

    def _unknown_message(self, path: object) -> str:
        if not isinstance(path, str):
            return f"signal path {path!r} is not a string; expected a VSS path like 'Vehicle.Speed'"
        message = f"unknown VSS signal {path!r}"
        below = [p for p in self._paths if p.startswith(path + ".")]
        if below:
            return f"{message}: it is a branch with {len(below)} signals, e.g. {below[:3]}"
        close = difflib.get_close_matches(path, self._paths, n=3, cutoff=0.75)
        if not close:
            # A wrong branch with the right leaf name is the commonest slip; match on the tail.
            leaf = path.rsplit(".", 1)[-1]
            close = [p for p in self._paths if p.rsplit(".", 1)[-1] == leaf][:3]
        if close:
            return f"{message}; did you mean {' or '.join(repr(c) for c in close)}?"
        return f"{message}; no similar path among the catalog's {len(self)} signals"

    def overlaid(self, overlay: Catalog) -> Catalog:
        """This catalog with ``overlay``'s signals added (or replacing those at the same path)
        and its branches.

        Raises:
            ValueError: a path would be both a signal and a branch.
        """
        signals = dict(self._signals)
        signals.update({s.path: s for s in overlay})
        branches = dict(self._branches)
        branches.update(overlay._branches)
        return Catalog(signals.values(), branches.values())

    def with_prefix(self, prefix: str) -> Catalog:
        """The signals at or below ``prefix`` (``Vehicle.Cabin`` matches ``Vehicle.Cabin.*``,
        not ``Vehicle.CabinX``), with their branches."""
        prefix = prefix.rstrip(".")

        def under(p: str) -> bool:
            return p == prefix or p.startswith(prefix + ".")

        return Catalog(
            (s for s in self if under(s.path)),
            (
                b
                for b in self._branches.values()
                if under(b.path) or prefix.startswith(b.path + ".")
            ),
        )

    def in_category(self, category: PrivacyCategory) -> Catalog:
        """The signals of one privacy category.

        Raises:
            ValueError: ``category`` is not one of the five privacy categories.
        """
        if category not in PRIVACY_CATEGORIES:
            raise ValueError(f"privacy category {category!r} is not one of {PRIVACY_CATEGORIES}")
        return Catalog((s for s in self if s.privacy_category == category), self._branches.values())

    # --- values ----------------------------------------------------------------------------------
    def validate(self, path: str, value: object) -> Any:
        """``value`` checked against the signal at ``path``, in its normalised Python form.

        See ``drivetrain.core.vss.validation`` for the exact rules.

        Raises:
            UnknownSignalError: ``path`` is not in the catalog.
            SignalTypeError: the value's type does not match the signal's VSS datatype, or an
                integer does not fit its bit width; the message quotes the value, its Python
                type and the expected datatype.
            SignalRangeError: the value is outside ``[min, max]`` or not an allowed value.
        """
        return normalise_value(self.get(path), value)

    def validate_array(self, path: str, values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """A boolean mask over ``values`` (1-D): True where ``validate`` would accept the value.

        Vectorised for numeric and boolean columns; meant for batches during ingestion.

        Raises:
            UnknownSignalError: ``path`` is not in the catalog.
            ValueError: ``values`` is not one-dimensional.
        """
        return valid_mask(self.get(path), values)

    # --- files -----------------------------------------------------------------------------------
    @classmethod
    def from_vss_json(cls, path: str | Path) -> Catalog:
        """Load a full VSS JSON export (vss-tools ``vspec export json``).

        Raises:
            CatalogFormatError: the file cannot be read or is not a VSS tree; the message names
                the file, the node path and the field.
        """
        from drivetrain.core.vss.vss_json import load_vss_json

        return load_vss_json(path)

    def to_vss_json(self, path: str | Path) -> None:
        """Write this catalog as a vss-tools-shaped JSON tree to ``path``."""
        from drivetrain.core.vss.vss_json import dump_vss_json

        dump_vss_json(self, path)
