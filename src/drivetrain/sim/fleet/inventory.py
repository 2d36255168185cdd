"""The ECU inventories of a simulated fleet: which ECUs each vehicle has and what they run.

A model's ECUs are the nodes of its CAN database (``BU_`` in ``drivetrain_compact_bev.dbc``:
VCU, BMS, MCU, OBC, ...). Each ECU of a model has one hardware id (``BMS-CH50-HW3``: ECU,
model code, hardware revision). Software versions differ between vehicles, as in a real fleet
part-way through its updates: each vehicle's version of each ECU is drawn from
:data:`SOFTWARE_RELEASES` with a generator seeded by the fleet seed, so the same seed gives
the same inventories. The battery management software, for example, is still ``2.3.1`` on
about 40 % of the fleet, so ``software."BMS" < "2.4.0"`` selects a real subset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Final

import numpy as np

from drivetrain.core.can import load_dbc
from drivetrain.core.wire import EcuInfo
from drivetrain.sim.can.vehicles import dbc_path

#: The model code in hardware ids, per CAN model.
MODEL_CODES: Final[Mapping[str, str]] = {"compact_bev": "CH50", "suv_bev": "SU77"}

#: Software releases in the field per ECU name: (version, share of the fleet). ECUs not listed
#: run :data:`DEFAULT_RELEASES`.
SOFTWARE_RELEASES: Final[Mapping[str, tuple[tuple[str, float], ...]]] = {
    "BMS": (("2.3.1", 0.40), ("2.4.0", 0.35), ("2.4.2", 0.25)),
    "VCU": (("5.1.0", 0.30), ("5.2.1", 0.70)),
    "MCU": (("3.0.7", 0.50), ("3.1.0", 0.50)),
    "MCU_R": (("3.0.7", 0.45), ("3.1.0", 0.55)),
    "OBC": (("1.8.2", 0.60), ("1.9.0", 0.40)),
    "CCU": (("1.8.2", 0.60), ("1.9.0", 0.40)),
    "TCU": (("4.2.0", 0.20), ("4.3.1", 0.80)),
    "TBOX": (("4.2.0", 0.20), ("4.3.1", 0.80)),
    "ESP": (("7.0.3", 1.0),),
    "ESC": (("7.0.3", 1.0),),
    "EPS": (("2.1.0", 0.70), ("2.1.1", 0.30)),
}
DEFAULT_RELEASES: Final = (("1.0.4", 0.30), ("1.1.0", 0.70))


@cache
def model_ecus(can_model: str) -> tuple[str, ...]:
    """The ECU names of ``can_model``: the nodes of its DBC, in file order.

    Raises:
        NotFoundError: an unknown model.
    """
    return tuple(node.name for node in load_dbc(dbc_path(can_model)).database.nodes)


def hardware_id(can_model: str, ecu: str) -> str:
    """The hardware id of ``ecu`` in ``can_model`` (``BMS-CH50-HW3``); the revision (1-4) is a
    fixed function of the name, so it is the same in every run."""
    revision = 1 + sum(ecu.encode()) % 4
    return f"{ecu}-{MODEL_CODES[can_model]}-HW{revision}"


def draw_inventories(can_models: Sequence[str], seed: int) -> list[tuple[EcuInfo, ...]]:
    """One inventory per vehicle (``can_models[i]`` is vehicle i's CAN model), with software
    versions drawn from :data:`SOFTWARE_RELEASES` by a generator seeded with ``seed``.

    Raises:
        NotFoundError: an unknown model.
    """
    rng = np.random.default_rng([seed, 0x1A7E])
    draws = rng.random((len(can_models), max((len(model_ecus(m)) for m in can_models), default=0)))
    inventories = []
    for row, can_model in zip(draws, can_models, strict=True):
        inventories.append(
            tuple(
                EcuInfo(name, hardware_id(can_model, name), _pick(name, float(u)))
                for name, u in zip(model_ecus(can_model), row, strict=False)
            )
        )
    return inventories


def _pick(ecu: str, u: float) -> str:
    """The release whose cumulative share first exceeds ``u`` (0 <= u < 1)."""
    releases = SOFTWARE_RELEASES.get(ecu, DEFAULT_RELEASES)
    total = 0.0
    for version, share in releases:
        total += share
        if u < total:
            return version
    return releases[-1][0]
