"""``SignalSpec``: one VSS leaf (sensor, actuator or attribute) and what its values may be."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeGuard, get_args

from drivetrain.core.vss.datatypes import VssDatatype, is_numeric, is_vss_datatype
from drivetrain.core.vss.privacy import PrivacyCategory, is_privacy_category

_PATH: Final = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")

NodeType = Literal["sensor", "actuator", "attribute"]
NODE_TYPES: Final[tuple[NodeType, ...]] = get_args(NodeType)

BoundsSource = Literal["vss", "drivetrain"]

Number = int | float
Scalar = bool | int | float | str


def is_node_type(value: object) -> TypeGuard[NodeType]:
    """True for ``sensor``, ``actuator`` and ``attribute`` (the VSS leaf types)."""
    return isinstance(value, str) and value in NODE_TYPES


@dataclass(frozen=True)
class SignalSpec:
    """A VSS leaf signal.

    ``minimum``/``maximum`` are inclusive and in ``unit``; for array datatypes they bound every
    element. ``allowed`` restricts values (every element, for arrays) to a closed set; for VSS
    ``enum`` nodes (an integer datatype whose values have names) ``enum`` maps each name to its
    integer and ``allowed`` holds the integers. ``bounds_source`` is ``"drivetrain"`` where this
    project set a bound that the VSS standard leaves open (e.g. a percentage to [0, 100]).
    ``extra`` keeps attributes of a VSS export that this model does not interpret, so a
    load/dump round trip loses nothing.
    """

    path: str
    node_type: NodeType
    datatype: VssDatatype
    description: str
    privacy_category: PrivacyCategory
    unit: str | None = None
    minimum: Number | None = None
    maximum: Number | None = None
    allowed: tuple[Scalar, ...] | None = None
    enum: Mapping[str, int] | None = field(default=None, hash=False)
    comment: str | None = None
    default: Any = field(default=None, hash=False)
    deprecation: str | None = None
    bounds_source: BoundsSource = "vss"
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not _PATH.fullmatch(self.path):
            raise ValueError(
                f"SignalSpec.path {self.path!r} is not a dotted VSS path like 'Vehicle.Speed'"
            )
        if not is_node_type(self.node_type):
            raise ValueError(f"SignalSpec.node_type {self.node_type!r} is not one of {NODE_TYPES}")
        if not is_vss_datatype(self.datatype):
            raise ValueError(f"SignalSpec.datatype {self.datatype!r} is not a VSS datatype")
        if not is_privacy_category(self.privacy_category):
            raise ValueError(f"SignalSpec.privacy_category {self.privacy_category!r} is unknown")
        if (self.minimum is not None or self.maximum is not None) and not is_numeric(self.datatype):
            raise ValueError(
                f"{self.path}: min/max given for non-numeric datatype {self.datatype!r}"
            )
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"{self.path}: min {self.minimum!r} > max {self.maximum!r}")

    @property
    def name(self) -> str:
        """The last path element (``Vehicle.Speed`` → ``Speed``)."""
        return self.path.rsplit(".", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready mapping; keys with no value are left out. Inverse of ``from_dict``."""
        out: dict[str, Any] = {
            "path": self.path,
            "type": self.node_type,
            "datatype": self.datatype,
            "description": self.description,
            "privacy_category": self.privacy_category,
        }
        optional: dict[str, Any] = {
            "unit": self.unit,
            "min": self.minimum,
            "max": self.maximum,
            "allowed": list(self.allowed) if self.allowed is not None else None,
            "enum": dict(self.enum) if self.enum is not None else None,
            "comment": self.comment,
            "default": _thaw(self.default),
            "deprecation": self.deprecation,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.bounds_source != "vss":
            out["bounds_source"] = self.bounds_source
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalSpec:
        """Build from ``to_dict`` output.

        Raises:
            ValueError: a required key is missing or a value is not of the accepted kind
                (callers reading files translate this into ``CatalogFormatError``).
        """
        missing = [
            k
            for k in ("path", "type", "datatype", "description", "privacy_category")
            if k not in data
        ]
        if missing:
            raise ValueError(f"signal entry {data.get('path', '?')!r} is missing {missing}")
        allowed = data.get("allowed")
        enum = data.get("enum")
        bounds_source = data.get("bounds_source", "vss")
        if bounds_source not in get_args(BoundsSource):
            raise ValueError(
                f"bounds_source {bounds_source!r} is not one of {get_args(BoundsSource)}"
            )
        return cls(
            path=str(data["path"]),
            node_type=data["type"],
            datatype=data["datatype"],
            description=str(data["description"]),
            privacy_category=data["privacy_category"],
            unit=data.get("unit"),
            minimum=_number_or_none(data.get("min"), "min"),
            maximum=_number_or_none(data.get("max"), "max"),
            allowed=tuple(allowed) if allowed is not None else None,
            enum={str(k): int(v) for k, v in enum.items()} if enum is not None else None,
            comment=data.get("comment"),
            default=_freeze(data.get("default")),
            deprecation=data.get("deprecation"),
            bounds_source=bounds_source,
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class BranchSpec:
    """A VSS branch (an interior node such as ``Vehicle.Cabin``): its text, kept for dumping."""

    path: str
    description: str
    comment: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


def _number_or_none(value: object, key: str) -> Number | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        # ValueError, not TypeError: this is bad file content, which callers turn into
        # CatalogFormatError together with the other content errors.
        raise ValueError(f"{key} {value!r} is not a number")  # noqa: TRY004
    return value


def _freeze(value: Any) -> Any:
    """Lists (VSS array defaults) become tuples so a spec stays immutable."""
    return tuple(value) if isinstance(value, list) else value


def _thaw(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
