"""Read and write the VSS JSON tree produced by vss-tools (``vspec export json``).

The export is one object per root (``{"Vehicle": {...}}``); each node has ``type``
(``branch``, ``sensor``, ``actuator``, ``attribute``) and ``description``; branches hold
``children``; leaves hold ``datatype`` and optionally ``unit``, ``min``, ``max``,
``allowed``, ``enum``, ``default``, ``comment``, ``deprecation``. Instances are already
expanded by the exporter (``Row1``/``Row2``…), so every leaf path is explicit.

``parse_vss_tree``/``vss_tree`` are pure (a mapping in, a catalog out, and back); the two
file functions wrap them. Attributes this model does not interpret (vss-tools extended
attributes such as ``uuid`` or ``fka``) are kept in ``extra`` and written back unchanged.
Two extended attributes are ours: ``privacy_category`` (written only where it differs from
the path rule) and ``bounds_source`` (written only where this project set a bound).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivetrain.core.errors import CatalogFormatError
from drivetrain.core.vss.catalog import Catalog
from drivetrain.core.vss.datatypes import is_vss_datatype
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, privacy_category_for
from drivetrain.core.vss.spec import NODE_TYPES, BranchSpec, SignalSpec

_LEAF_KEYS = frozenset(
    {
        "type",
        "description",
        "datatype",
        "unit",
        "min",
        "max",
        "allowed",
        "enum",
        "default",
        "comment",
        "deprecation",
        "privacy_category",
        "bounds_source",
    }
)
_BRANCH_KEYS = frozenset({"type", "description", "comment", "children"})


def load_vss_json(path: str | Path) -> Catalog:
    """Load a VSS JSON export from ``path``.

    Raises:
        CatalogFormatError: the file cannot be read, is not JSON, or a node is malformed; the
            message names the file and the node path and field.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogFormatError(f"{source}: cannot read VSS JSON export: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CatalogFormatError(
            f"{source}: not JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    return parse_vss_tree(data, source=source)


def dump_vss_json(catalog: Catalog, path: str | Path) -> None:
    """Write ``catalog`` to ``path`` as a vss-tools-shaped JSON tree (keys sorted, indented)."""
    Path(path).write_text(
        json.dumps(vss_tree(catalog), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def parse_vss_tree(data: object, source: str = "<VSS JSON>") -> Catalog:
    """Build a catalog from a decoded VSS JSON tree.

    Every leaf (sensor, actuator, attribute) becomes a ``SignalSpec``, its privacy category
    given by the path rule unless the node carries a ``privacy_category`` attribute.

    Raises:
        CatalogFormatError: the tree or a node is malformed; names ``source``, the node path
            and the field.
    """
    if not isinstance(data, dict) or not data:
        raise CatalogFormatError(
            f'{source}: expected a JSON object of root nodes like {{"Vehicle": {{...}}}}, '
            f"got {type(data).__name__}"
        )
    signals: list[SignalSpec] = []
    branches: list[BranchSpec] = []
    stack: list[tuple[str, object]] = [(name, node) for name, node in reversed(data.items())]
    while stack:
        node_path, node = stack.pop()
        if not isinstance(node, dict):
            raise CatalogFormatError(
                f"{source}: node {node_path}: expected an object, got {type(node).__name__}"
            )
        node_type = node.get("type")
        if node_type == "branch":
            branches.append(_branch(node, node_path, source))
            children = node.get("children", {})
            if not isinstance(children, dict):
                raise _field_error(
                    source, node_path, "children", children, "an object of child nodes"
                )
            stack.extend(
                (f"{node_path}.{name}", child) for name, child in reversed(children.items())
            )
        elif node_type in NODE_TYPES:
            if "children" in node:
                raise _field_error(
                    source, node_path, "children", "...", f"no children on a {node_type}"
                )
            signals.append(_leaf(node, node_path, source))
        else:
            raise _field_error(
                source, node_path, "type", node_type, f"one of branch, {', '.join(NODE_TYPES)}"
            )
    return Catalog(signals, branches)


def _field_error(
    source: str, node_path: str, key: str, value: object, expected: str
) -> CatalogFormatError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return CatalogFormatError(
        f"{source}: node {node_path}: field {key!r} is {shown}; expected {expected}"
    )


def _text(
    node: Mapping[str, Any], key: str, source: str, node_path: str, required: bool
) -> str | None:
    value = node.get(key)
    if value is None:
        if required:
            raise _field_error(source, node_path, key, None, "a string (the field is required)")
        return None
    if not isinstance(value, str):
        raise _field_error(source, node_path, key, value, "a string")
    return value


def _branch(node: Mapping[str, Any], node_path: str, source: str) -> BranchSpec:
    return BranchSpec(
        path=node_path,
        description=_text(node, "description", source, node_path, required=True) or "",
        comment=_text(node, "comment", source, node_path, required=False),
        extra={k: v for k, v in node.items() if k not in _BRANCH_KEYS},
    )


def _leaf(node: Mapping[str, Any], node_path: str, source: str) -> SignalSpec:
    datatype = node.get("datatype")
    if not is_vss_datatype(datatype):
        raise _field_error(
            source,
            node_path,
            "datatype",
            datatype,
            "a VSS datatype (boolean, string, uint8..uint64, int8..int64, float, double, "
            "or an array form like float[])",
        )
    for key in ("min", "max"):
        value = node.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _field_error(source, node_path, key, value, "a number")
    allowed = node.get("allowed")
    if allowed is not None and (not isinstance(allowed, list) or not allowed):
        raise _field_error(source, node_path, "allowed", allowed, "a non-empty list of values")
    enum = node.get("enum")
    if enum is not None:
        if not isinstance(enum, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in enum.items()
        ):
            raise _field_error(
                source, node_path, "enum", enum, "an object mapping names to integers"
            )
        if allowed is None:
            allowed = sorted(enum.values())
    category = node.get("privacy_category", privacy_category_for(node_path))
    if category not in PRIVACY_CATEGORIES:
        raise _field_error(
            source, node_path, "privacy_category", category, f"one of {PRIVACY_CATEGORIES}"
        )
    bounds_source = node.get("bounds_source", "vss")
    if bounds_source not in ("vss", "drivetrain"):
        raise _field_error(
            source, node_path, "bounds_source", bounds_source, "'vss' or 'drivetrain'"
        )
    try:
        return SignalSpec(
            path=node_path,
            node_type=node["type"],
            datatype=datatype,
            description=_text(node, "description", source, node_path, required=True) or "",
            privacy_category=category,
            unit=_text(node, "unit", source, node_path, required=False),
            minimum=node.get("min"),
            maximum=node.get("max"),
            allowed=tuple(allowed) if allowed is not None else None,
            enum=dict(enum) if enum is not None else None,
            comment=_text(node, "comment", source, node_path, required=False),
            default=tuple(node["default"])
            if isinstance(node.get("default"), list)
            else node.get("default"),
            deprecation=_text(node, "deprecation", source, node_path, required=False),
            bounds_source=bounds_source,
            extra={k: v for k, v in node.items() if k not in _LEAF_KEYS},
        )
    except ValueError as e:
        raise CatalogFormatError(f"{source}: node {node_path}: {e}") from e


def vss_tree(catalog: Catalog) -> dict[str, Any]:
    """The catalog as a vss-tools JSON tree (a ``dict`` ready for ``json.dumps``).

    Branches the catalog has no text for are written with an empty description.
    """
    roots: dict[str, Any] = {}
    known = catalog.branches
    for spec in catalog:
        *parents, leaf = spec.path.split(".")
        level = roots
        for depth, name in enumerate(parents):
            branch_path = ".".join(parents[: depth + 1])
            if name not in level:
                level[name] = _branch_node(known.get(branch_path), branch_path)
            level = level[name]["children"]
        level[leaf] = _leaf_node(spec)
    return roots


def _branch_node(branch: BranchSpec | None, branch_path: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "branch", "description": "", "children": {}}
    if branch is not None:
        node.update(branch.extra)
        node["description"] = branch.description
        if branch.comment is not None:
            node["comment"] = branch.comment
    return node


def _leaf_node(spec: SignalSpec) -> dict[str, Any]:
    node: dict[str, Any] = dict(spec.extra)
    node.update(
        {"type": spec.node_type, "datatype": spec.datatype, "description": spec.description}
    )
    optional: dict[str, Any] = {
        "unit": spec.unit,
        "min": spec.minimum,
        "max": spec.maximum,
        "comment": spec.comment,
        "deprecation": spec.deprecation,
        "default": list(spec.default) if isinstance(spec.default, tuple) else spec.default,
    }
    if spec.enum is not None:
        optional["enum"] = dict(spec.enum)
        # ``allowed`` is implied by ``enum`` unless the node restricted it further.
        if spec.allowed is not None and sorted(spec.allowed) != sorted(spec.enum.values()):
            optional["allowed"] = list(spec.allowed)
    elif spec.allowed is not None:
        optional["allowed"] = list(spec.allowed)
    node.update({k: v for k, v in optional.items() if v is not None})
    if spec.privacy_category != privacy_category_for(spec.path):
        node["privacy_category"] = spec.privacy_category
    if spec.bounds_source != "vss":
        node["bounds_source"] = spec.bounds_source
    return node
