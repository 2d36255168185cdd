"""The COVESA VSS signal catalog: signal specs, lookup, value checks, and the vss-tools JSON format.

Public surface::

    from drivetrain.core.vss import builtin_catalog, Catalog, SignalSpec

    catalog = builtin_catalog()
    spec = catalog.get("Vehicle.Speed")          # UnknownSignalError if not in the catalog
    speed = catalog.validate("Vehicle.Speed", 87.5)  # SignalTypeError / SignalRangeError
"""

from __future__ import annotations

from drivetrain.core.vss.builtin import builtin_catalog
from drivetrain.core.vss.catalog import Catalog
from drivetrain.core.vss.datatypes import VssDatatype
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory, privacy_category_for
from drivetrain.core.vss.spec import BranchSpec, NodeType, SignalSpec
from drivetrain.core.vss.vss_json import dump_vss_json, load_vss_json, parse_vss_tree, vss_tree

__all__ = [
    "PRIVACY_CATEGORIES",
    "BranchSpec",
    "Catalog",
    "NodeType",
    "PrivacyCategory",
    "SignalSpec",
    "VssDatatype",
    "builtin_catalog",
    "dump_vss_json",
    "load_vss_json",
    "parse_vss_tree",
    "privacy_category_for",
    "vss_tree",
]
