"""The DBC→VSS signal map: which decoded CAN signal becomes which VSS signal, in which unit.

A map file (TOML or YAML) lists entries::

    version = 1

    [[signals]]
    can = "SPEED.SPEED"            # MESSAGE.SIGNAL in the DBC
    vss = "Vehicle.Speed"          # a VSS path in the catalog
    from_unit = "km/h"             # optional: convert from this unit ...
    to_unit = "km/h"               # ... to this one (default: the VSS signal's unit)

    [[signals]]
    can = "ENGINE.COOLANT_RAW"
    vss = "Vehicle.Powertrain.CombustionEngine.ECT"
    factor = 0.5                   # or explicit: value * factor + offset
    offset = -40

An entry uses either ``factor``/``offset`` or ``from_unit``/``to_unit`` (see
``signal_map_units`` for the table), or neither (values pass unchanged). One CAN signal may feed
several VSS paths. ``load_signal_map`` checks every entry against the DBC (message and signal
exist) and the VSS catalog (path exists, ``to_unit`` is the signal's unit) and reports every
problem at once. ``SignalMap.apply`` maps a whole ``DecodedSignals`` batch with NumPy.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tomli_w
import yaml
from cantools.database.can import Database

from drivetrain.core.can.frames import DecodedSignals
from drivetrain.core.can.signal_map_units import UnitConversion, canonical_unit, conversion_between
from drivetrain.core.errors import SignalMapError, UnknownSignalError
from drivetrain.core.vss import Catalog

MAP_FORMAT_VERSION = 1
_ENTRY_KEYS = {"can", "vss", "factor", "offset", "from_unit", "to_unit"}


@dataclass(frozen=True)
class SignalMapping:
    """One map entry: CAN signal ``message.signal`` → VSS ``vss_path``, converted on the way."""

    message: str
    signal: str
    vss_path: str
    factor: float | None = None
    offset: float | None = None
    from_unit: str | None = None
    to_unit: str | None = None

    @property
    def source(self) -> str:
        """``MESSAGE.SIGNAL``, as written in the map file."""
        return f"{self.message}.{self.signal}"

    def conversion(self) -> UnitConversion:
        """The conversion this entry applies.

        Raises:
            SignalMapError: ``from_unit`` without a ``to_unit`` (validate against a catalog
                first, which fills it in), or units that cannot be converted.
        """
        if self.from_unit is not None:
            if self.to_unit is None:
                raise SignalMapError(
                    f"entry {self.source!r}: from_unit {self.from_unit!r} has no to_unit; "
                    "validate the map against the VSS catalog to take the signal's unit"
                )
            return conversion_between(self.from_unit, self.to_unit)
        return UnitConversion(
            1.0 if self.factor is None else self.factor, 0.0 if self.offset is None else self.offset
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"can": self.source, "vss": self.vss_path}
        for key in ("factor", "offset", "from_unit", "to_unit"):
            if (value := getattr(self, key)) is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> SignalMapping:
        """Build an entry from its file form; ``where`` names it in errors.

        Raises:
            SignalMapError: unknown or missing keys, wrong value types, ``can`` not of the form
                ``MESSAGE.SIGNAL``, or both a factor/offset and units.
        """
        if not isinstance(data, Mapping):
            raise SignalMapError(f"{where}: expected a table of keys, got {data!r}")
        unknown = sorted(set(data) - _ENTRY_KEYS)
        if unknown:
            raise SignalMapError(f"{where}: unknown keys {unknown}; expected {sorted(_ENTRY_KEYS)}")
        for key in ("can", "vss"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise SignalMapError(f"{where}: {key!r} must be a non-empty string, got {data.get(key)!r}")
        message, dot, signal = data["can"].strip().partition(".")
        if not dot or not message or not signal:
            raise SignalMapError(f"{where}: 'can' = {data['can']!r} is not of the form MESSAGE.SIGNAL")
        numbers: dict[str, float | None] = {}
        for key in ("factor", "offset"):
            value = data.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            ):
                raise SignalMapError(f"{where}: {key!r} must be a finite number, got {value!r}")
            numbers[key] = None if value is None else float(value)
        units: dict[str, str | None] = {}
        for key in ("from_unit", "to_unit"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise SignalMapError(f"{where}: {key!r} must be a unit name, got {value!r}")
            units[key] = value
        if any(v is not None for v in numbers.values()) and any(v is not None for v in units.values()):
            raise SignalMapError(f"{where}: give either factor/offset or from_unit/to_unit, not both")
        if units["to_unit"] is not None and units["from_unit"] is None:
            raise SignalMapError(f"{where}: to_unit {units['to_unit']!r} needs a from_unit")
        for key, unit in units.items():
            if unit is not None and canonical_unit(unit) is None:
                try:
                    conversion_between(unit, unit)
                except SignalMapError as e:
                    raise SignalMapError(f"{where}: {key}: {e}") from None
        return cls(message, signal, data["vss"].strip(), numbers["factor"], numbers["offset"],
                   units["from_unit"], units["to_unit"])


@dataclass(frozen=True)
class VssSignals:
    """VSS signal values, one row per (decoded value, mapping), in the order of the input.

    ``path_index`` indexes ``paths``; ``value`` is in the VSS signal's unit; ``source_row`` is
    the row of the ``DecodedSignals`` each value came from (for its bus, frame id, message and
    signal).
    """

    timestamp_s: npt.NDArray[np.float64]
    path_index: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    source_row: npt.NDArray[np.int64]
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.value)


@dataclass(frozen=True)
class SignalMap:
    """A validated or unvalidated list of ``SignalMapping`` entries; ``source`` is its file."""

    mappings: tuple[SignalMapping, ...]
    source: str = "<signal map>"

    @property
    def paths(self) -> tuple[str, ...]:
        """The distinct VSS paths, in entry order (the dictionary of ``VssSignals.paths``)."""
        return tuple(dict.fromkeys(m.vss_path for m in self.mappings))

    def to_dict(self) -> dict[str, Any]:
        return {"version": MAP_FORMAT_VERSION, "signals": [m.to_dict() for m in self.mappings]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<signal map>") -> SignalMap:
        """Build a map from its file form.

        Raises:
            SignalMapError: wrong version, no ``signals`` list, or a malformed entry (named by
                ``source`` and its position).
        """
        if not isinstance(data, Mapping):
            raise SignalMapError(f"{source}: expected a table with 'version' and 'signals'")
        if data.get("version", MAP_FORMAT_VERSION) != MAP_FORMAT_VERSION:
            raise SignalMapError(
                f"{source}: version {data.get('version')!r} is not supported; expected {MAP_FORMAT_VERSION}"
            )
        unknown = sorted(set(data) - {"version", "signals"})
        if unknown:
            raise SignalMapError(f"{source}: unknown top-level keys {unknown}; expected version, signals")
        entries = data.get("signals")
        if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
            raise SignalMapError(f"{source}: 'signals' must be a non-empty list of entries")
        mappings = tuple(
            SignalMapping.from_dict(e, f"{source}: entry {i + 1}") for i, e in enumerate(entries)
        )
        return cls(mappings, source)

    def validate(self, database: Database, catalog: Catalog, dbc_name: str = "the DBC") -> SignalMap:
        """Check every entry against ``database`` and ``catalog``; return the map with each
        ``from_unit`` entry's missing ``to_unit`` set to its VSS signal's unit.

        Raises:
            SignalMapError: one message listing every entry whose message or signal is not in
                the DBC (with close matches), whose VSS path is not in the catalog (with close
                matches), or whose units do not fit the VSS signal.
        """
        problems: list[str] = []
        resolved: list[SignalMapping] = []
        messages = {m.name: m for m in database.messages}
        for i, entry in enumerate(self.mappings):
            where = f"{self.source}: entry {i + 1} ({entry.source!r} -> {entry.vss_path!r})"
            message = messages.get(entry.message)
            if message is None:
                problems.append(f"{where}: message {entry.message!r} is not in {dbc_name}"
                                f"{_close(entry.message, messages)}")
            elif entry.signal not in (names := [s.name for s in message.signals]):
                problems.append(f"{where}: message {entry.message!r} has no signal {entry.signal!r}"
                                f"{_close(entry.signal, names)}")
            try:
                spec = catalog.get(entry.vss_path)
            except UnknownSignalError:
                problems.append(f"{where}: VSS path {entry.vss_path!r} is not in the catalog"
                                f"{_close(entry.vss_path, catalog.paths)}")
                resolved.append(entry)
                continue
            if entry.from_unit is not None:
                to_unit = entry.to_unit or spec.unit
                if to_unit is None:
                    problems.append(f"{where}: from_unit {entry.from_unit!r} but {entry.vss_path} has no unit")
                    resolved.append(entry)
                    continue
                if spec.unit is not None and canonical_unit(to_unit) != canonical_unit(spec.unit):
                    problems.append(f"{where}: to_unit {to_unit!r} is not {entry.vss_path}'s unit {spec.unit!r}")
                try:
                    conversion_between(entry.from_unit, to_unit)
                except SignalMapError as e:
                    problems.append(f"{where}: {e}")
                entry = replace(entry, to_unit=to_unit)
            resolved.append(entry)
        if problems:
            raise SignalMapError("\n".join(problems))
        return SignalMap(tuple(resolved), self.source)

    def apply(self, decoded: DecodedSignals) -> VssSignals:
        """The VSS values of every decoded value an entry maps (vectorised; unmapped values are
        left out). Rows keep the input order; a CAN signal with several entries yields one row
        per entry, in entry order.

        Raises:
            SignalMapError: an entry's conversion cannot be built (see ``SignalMapping.conversion``).
        """
        paths = self.paths
        path_of = {p: i for i, p in enumerate(paths)}
        message_of = {name: i for i, name in enumerate(decoded.message_names)}
        signal_of = {name: i for i, name in enumerate(decoded.signal_names)}
        width = max(len(decoded.signal_names), 1)
        # layer j holds each CAN signal's j-th entry, so every layer has distinct keys
        layers: list[list[tuple[int, int, UnitConversion]]] = []
        seen: dict[int, int] = {}
        for entry in self.mappings:
            conversion = entry.conversion()
            mi, si = message_of.get(entry.message), signal_of.get(entry.signal)
            if mi is None or si is None:
                continue
            key = mi * width + si
            depth = seen.get(key, 0)
            seen[key] = depth + 1
            if depth == len(layers):
                layers.append([])
            layers[depth].append((key, path_of[entry.vss_path], conversion))
        keys = decoded.message_index.astype(np.int64) * width + decoded.signal_index
        parts = [_apply_layer(layer, keys, decoded.value) for layer in layers]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        path_index = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int32)
        values = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.float64)
        if len(parts) > 1:
            order = np.argsort(rows, kind="stable")
            rows, path_index, values = rows[order], path_index[order], values[order]
        return VssSignals(decoded.timestamp_s[rows], path_index, values, rows, paths)


def _apply_layer(
    layer: list[tuple[int, int, UnitConversion]],
    keys: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    layer = sorted(layer, key=lambda item: item[0])
    table = np.array([k for k, _, _ in layer], np.int64)
    path = np.array([p for _, p, _ in layer], np.int32)
    factor = np.array([c.factor for _, _, c in layer], np.float64)
    offset = np.array([c.offset for _, _, c in layer], np.float64)
    pos = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    rows = np.flatnonzero(table[pos] == keys)
    slot = pos[rows]
    converted = values[rows]
    if (factor != 1.0).any() or (offset != 0.0).any():
        converted = converted * factor[slot] + offset[slot]
    return rows, path[slot], converted


def _close(name: str, candidates: Any) -> str:
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; close matches: {', '.join(matches)}" if matches else "; no close match"


# --- files ---------------------------------------------------------------------------------------
def parse_signal_map(text: str, source: str, syntax: str) -> SignalMap:
    """Parse map ``text`` written in ``syntax`` (``toml`` or ``yaml``); no DBC/VSS checks.

    Raises:
        SignalMapError: the text is not valid TOML/YAML or not a signal map.
    """
    try:
        data = tomllib.loads(text) if syntax == "toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise SignalMapError(f"{source}: not valid {syntax.upper()}: {e}") from e
    return SignalMap.from_dict(data if data is not None else {}, source)


def _syntax(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise SignalMapError(f"signal map '{path}' has extension {suffix!r}; expected .toml, .yaml or .yml")


def load_signal_map(
    path: str | Path, database: Database | None = None, catalog: Catalog | None = None,
    *, dbc_name: str = "the DBC",
) -> SignalMap:
    """Load a map file; validate it (``SignalMap.validate``) when a database and catalog are given.

    Raises:
        SignalMapError: the file is missing, unreadable, malformed, or fails validation; the
            message names the file and entry.
    """
    path = Path(path)
    syntax = _syntax(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SignalMapError(f"signal map '{path}' cannot be read: {e}") from e
    signal_map = parse_signal_map(text, str(path), syntax)
    if database is not None and catalog is not None:
        signal_map = signal_map.validate(database, catalog, dbc_name)
    return signal_map


def dump_signal_map(signal_map: SignalMap, path: str | Path) -> None:
    """Write ``signal_map`` to ``path`` as TOML or YAML (from the extension).

    Raises:
        SignalMapError: the extension is neither TOML nor YAML.
    """
    path = Path(path)
    path.write_text(dumps_signal_map(signal_map, _syntax(path)), encoding="utf-8")


def dumps_signal_map(signal_map: SignalMap, syntax: str) -> str:
    """The file text of ``signal_map`` in ``syntax`` (``toml`` or ``yaml``)."""
    data = signal_map.to_dict()
    if syntax == "yaml":
        text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        return text
    return "# DBC -> VSS signal map\n" + tomli_w.dumps(data)
