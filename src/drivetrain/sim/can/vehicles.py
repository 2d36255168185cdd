"""The simulated vehicle models' CAN databases and DBC→VSS maps.

Two models, authored as two different manufacturers would (files in ``drivetrain/sim/data``):

- ``compact_bev`` — a compact battery-electric hatch, front motor, 50 kWh / 400 V pack
  (``drivetrain_compact_bev.dbc``): Intel byte order, 11-bit ids with the GNSS and telematics
  messages on 29-bit ids, an E2E header (CRC-8/SAE-J1850 in byte 0, 4-bit counter in byte 1) on
  the safety-relevant messages, speeds in km/h, temperatures in °C.
- ``suv_bev`` — a mid-size battery-electric SUV, rear motor, 82 kWh / 352 V pack
  (``drivetrain_suv_bev.dbc``): Motorola byte order, body and telematics on 29-bit ids, an E2E
  trailer (4-bit alive counter in byte 6, CRC-8/AUTOSAR in byte 7), vehicle speed in m/s, yaw
  rate in rad/s, cabin temperatures in kelvin and set points in °F, tyre pressures in psi.

They are the buses of the physics models ``compact-hatch-50`` and ``midsize-suv-77``
(``drivetrain.sim.physics``). Each map (``*_vss.toml``, the foundation's signal-map format)
converts to VSS units.
``MAPPED_VSS_PATHS[model]`` lists the VSS paths a model's bus carries, for producers of VSS values
(vehicle physics) to check their coverage against.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from cantools.database.can import Database

from drivetrain.core.can import SignalMap, load_dbc, load_signal_map, parse_signal_map
from drivetrain.core.errors import NotFoundError
from drivetrain.core.vss import Catalog, builtin_catalog

VehicleModelName = Literal["compact_bev", "suv_bev"]
VEHICLE_MODELS: tuple[VehicleModelName, ...] = get_args(VehicleModelName)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def dbc_path(model: str) -> Path:
    """The packaged DBC file of ``model``.

    Raises:
        NotFoundError: ``model`` is not one of ``VEHICLE_MODELS``.
    """
    return DATA_DIR / f"drivetrain_{_check(model)}.dbc"


def map_path(model: str) -> Path:
    """The packaged DBC→VSS map of ``model`` (see :func:`dbc_path` for errors)."""
    return DATA_DIR / f"drivetrain_{_check(model)}_vss.toml"


def _check(model: str) -> str:
    if model not in VEHICLE_MODELS:
        raise NotFoundError(f"vehicle model {model!r} is not one of {', '.join(VEHICLE_MODELS)}")
    return model


@dataclass(frozen=True)
class VehicleCan:
    """A model's CAN database and its validated DBC→VSS map."""

    model: VehicleModelName
    database: Database
    signal_map: SignalMap

    @property
    def dbc_path(self) -> Path:
        return dbc_path(self.model)

    @property
    def map_path(self) -> Path:
        return map_path(self.model)


def load_vehicle_can(model: str, catalog: Catalog | None = None) -> VehicleCan:
    """Load ``model``'s DBC and map, the map validated against ``catalog`` (default: built-in).

    Raises:
        NotFoundError: unknown model.
        DbcFormatError, SignalMapError: the packaged files are broken (a bad installation).
    """
    checked = _check(model)
    database = load_dbc(dbc_path(checked)).database
    signal_map = load_signal_map(
        map_path(checked),
        database,
        catalog if catalog is not None else builtin_catalog(),
        dbc_name=dbc_path(checked).name,
    )
    name: VehicleModelName = "compact_bev" if checked == "compact_bev" else "suv_bev"
    return VehicleCan(model=name, database=database, signal_map=signal_map)


@cache
def mapped_vss_paths(model: str) -> frozenset[str]:
    """The VSS paths that ``model``'s map feeds (read from the packaged map file).

    Raises:
        NotFoundError: unknown model.
    """
    path = map_path(model)
    return frozenset(parse_signal_map(path.read_text(encoding="utf-8"), str(path), "toml").paths)


class _MappedPaths(Mapping[str, frozenset[str]]):
    """``model → VSS paths``, read from the map files on first use (nothing at import)."""

    def __getitem__(self, model: str) -> frozenset[str]:
        if model not in VEHICLE_MODELS:
            raise KeyError(model)
        return mapped_vss_paths(model)

    def __iter__(self) -> Iterator[str]:
        return iter(VEHICLE_MODELS)

    def __len__(self) -> int:
        return len(VEHICLE_MODELS)


#: ``MAPPED_VSS_PATHS["compact_bev"]`` → frozenset of the VSS paths that model's bus carries.
MAPPED_VSS_PATHS: Mapping[str, frozenset[str]] = _MappedPaths()
