"""The built-in catalog: the standard VSS signals Drivetrain uses, shipped as package data.

``builtin_signals.yaml`` was derived from the COVESA VSS JSON export (MPL-2.0): path, type,
datatype, unit, min/max and description are the standard's; the privacy category follows the
rule in ``drivetrain.core.vss.privacy``; bounds marked ``bounds_source: drivetrain`` are ours,
set where VSS leaves a physically bounded signal open (a percentage, an absolute temperature).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from drivetrain.core.errors import CatalogFormatError
from drivetrain.core.vss.catalog import Catalog
from drivetrain.core.vss.spec import BranchSpec, SignalSpec

BUILTIN_RESOURCE = "builtin_signals.yaml"


@cache
def builtin_catalog() -> Catalog:
    """The built-in catalog (loaded once per process, then shared; it is immutable).

    Raises:
        CatalogFormatError: the packaged YAML is malformed (a broken installation).
    """
    text = files("drivetrain.core.vss").joinpath(BUILTIN_RESOURCE).read_text(encoding="utf-8")
    return parse_builtin_yaml(text, source=BUILTIN_RESOURCE)


def parse_builtin_yaml(text: str, source: str) -> Catalog:
    """Build a catalog from the built-in YAML layout (``branches:`` and ``signals:``).

    Raises:
        CatalogFormatError: the YAML is malformed; names ``source`` and the entry.
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CatalogFormatError(f"{source}: not valid YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("signals"), list):
        raise CatalogFormatError(f"{source}: expected a mapping with a 'signals' list")
    branches_data = data.get("branches") or {}
    if not isinstance(branches_data, dict):
        raise CatalogFormatError(f"{source}: 'branches' must map branch paths to their text")
    signals: list[SignalSpec] = []
    for index, entry in enumerate(data["signals"]):
        if not isinstance(entry, dict):
            raise CatalogFormatError(f"{source}: signals[{index}] is {entry!r}; expected a mapping")
        try:
            signals.append(SignalSpec.from_dict(entry))
        except (ValueError, TypeError) as e:
            raise CatalogFormatError(
                f"{source}: signals[{index}] ({entry.get('path', '?')}): {e}"
            ) from e
    branches: list[BranchSpec] = []
    for path, entry in branches_data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("description"), str):
            raise CatalogFormatError(
                f"{source}: branch {path}: expected a mapping with a 'description'"
            )
        branches.append(
            BranchSpec(
                path=str(path), description=entry["description"], comment=entry.get("comment")
            )
        )
    try:
        return Catalog(signals, branches)
    except ValueError as e:
        raise CatalogFormatError(f"{source}: {e}") from e
