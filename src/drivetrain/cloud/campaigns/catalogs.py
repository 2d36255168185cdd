"""Per-tenant signal catalogs: the standard VSS catalog plus the tenant's overlays, versioned.

A tenant starts on the standard catalog (``builtin_catalog``, version None). Each write makes a
new version:

* an **overlay** (as VSS overlays are written: a VSS JSON tree, keys may be dotted paths such
  as ``"Vehicle.Acme.Wiper.WearLevel"``; branches on the way are implied) is merged onto the
  previous version: new nodes are added, fields given for an existing node replace its
  fields (so an overlay can narrow a signal's ``min``/``max`` or change its unit);
* an **import** (a whole VSS JSON export, e.g. of the user's own vspec tree) becomes the
  catalog as is.

Versions never change once written, so a built catalog is cached per (tenant, version).
Campaigns are checked against, and decoder manifests name, a catalog version.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.campaigns.models import SignalCatalogRow
from drivetrain.cloud.infra import record_audit
from drivetrain.core.errors import CatalogFormatError, NotFoundError
from drivetrain.core.vss import Catalog, builtin_catalog, parse_vss_tree, vss_tree

CatalogKind = Literal["overlay", "import"]
#: Largest catalog document accepted (bytes of JSON).
MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
MAX_DEPTH: Final = 32
_CACHE_SIZE: Final = 64
_cache: OrderedDict[tuple[str, int], Catalog] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class CatalogVersion:
    """One version of a tenant's catalog, as listed."""

    tenant: str
    version: int
    kind: CatalogKind
    signals: int
    description: str
    created_by: str
    created_at: datetime


def _expand(tree: Mapping[str, Any], where: str, depth: int = 0) -> dict[str, Any]:
    """The tree with dotted keys turned into nested branches (implied branches are plain)."""
    if depth > MAX_DEPTH:
        raise CatalogFormatError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for key, node in tree.items():
        if not isinstance(key, str) or not key or not isinstance(node, Mapping):
            raise CatalogFormatError(f"{where}: node {key!r}: expected a name and an object")
        node = dict(node)
        if isinstance(node.get("children"), Mapping):
            node["children"] = _expand(node["children"], f"{where}.{key}", depth + 1)
        *parents, leaf = key.split(".")
        level = out
        for name in parents:
            branch = level.setdefault(name, {"type": "branch", "description": "",
                                             "children": {}})
            level = branch.setdefault("children", {})
        level[leaf] = _merge_node(level[leaf], node) if leaf in level else node
    return out


def _merge_node(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in base.items() if k != "children"}
    merged.update({k: v for k, v in overlay.items() if k != "children"})
    if "children" in base or "children" in overlay:
        merged["children"] = merge_trees(base.get("children", {}), overlay.get("children", {}))
    return merged


def merge_trees(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged onto ``base`` (both VSS JSON trees; see the module docstring)."""
    out = copy.deepcopy(dict(base))
    for name, node in overlay.items():
        out[name] = _merge_node(out[name], node) if name in out else copy.deepcopy(node)
    return out


def build_catalog(
    kind: CatalogKind, document: Any, previous: Catalog | None, source: str
) -> Catalog:
    """The catalog a version holds (pure).

    Raises:
        CatalogFormatError: not a VSS JSON tree, or the merged tree is not one (names the
            node and field).
    """
    if not isinstance(document, Mapping) or not document:
        raise CatalogFormatError(f"{source}: expected a VSS JSON tree like "
                                 '{"Vehicle": {"type": "branch", "children": {...}}}')
    if kind == "import":
        return parse_vss_tree(dict(document), source)
    base = vss_tree(previous if previous is not None else builtin_catalog())
    return parse_vss_tree(merge_trees(base, _expand(document, source)), source)


def _cached(tenant: str, version: int) -> Catalog | None:
    with _cache_lock:
        catalog = _cache.get((tenant, version))
        if catalog is not None:
            _cache.move_to_end((tenant, version))
        return catalog


def _remember(tenant: str, version: int, catalog: Catalog) -> None:
    with _cache_lock:
        _cache[(tenant, version)] = catalog
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def latest_catalog_version(session: Session, tenant: str) -> int | None:
    """The tenant's newest catalog version (None: the standard catalog)."""
    value = session.scalar(
        select(func.max(SignalCatalogRow.version)).where(SignalCatalogRow.tenant_id == tenant)
    )
    return None if value is None else int(value)


def tenant_catalog(
    session: Session, tenant: str, version: int | None = None
) -> tuple[Catalog, int | None]:
    """The tenant's catalog at ``version`` (default: the newest) and that version.

    Raises:
        NotFoundError: no such version of the tenant's catalog.
    """
    if version is None:
        version = latest_catalog_version(session, tenant)
        if version is None:
            return builtin_catalog(), None
    cached = _cached(tenant, version)
    if cached is not None:
        return cached, version
    rows = session.scalars(
        select(SignalCatalogRow).where(SignalCatalogRow.tenant_id == tenant,
                                       SignalCatalogRow.version <= version)
        .order_by(SignalCatalogRow.version)
    ).all()
    if not rows or rows[-1].version != version:
        raise NotFoundError(f"signal catalog version {version} of tenant {tenant!r} does not "
                            "exist")
    catalog: Catalog | None = None
    for row in rows:
        hit = _cached(tenant, row.version)
        catalog = hit or build_catalog(row.kind, json.loads(row.document), catalog,  # type: ignore[arg-type]
                                       f"catalog version {row.version}")
        _remember(tenant, row.version, catalog)
    assert catalog is not None
    return catalog, version


def add_catalog_version(
    session: Session,
    tenant: str,
    kind: CatalogKind,
    document: Any,
    *,
    actor: str,
    description: str = "",
    now: datetime | None = None,
    request_id: str | None = None,
) -> CatalogVersion:
    """Write a new version of the tenant's catalog: an overlay onto the newest version, or an
    import replacing it. Records ``campaigns.catalog.write``.

    Raises:
        CatalogFormatError: the document is not a VSS tree or too large; nothing is stored.
    """
    now = now or datetime.now(UTC)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise CatalogFormatError(f"catalog document is {len(text.encode()):,} bytes; at most "
                                 f"{MAX_DOCUMENT_BYTES:,}")
    previous_version = latest_catalog_version(session, tenant)
    previous = None if previous_version is None else tenant_catalog(
        session, tenant, previous_version)[0]
    version = (previous_version or 0) + 1
    catalog = build_catalog(kind, document, previous, f"catalog version {version}")
    session.add(SignalCatalogRow(
        tenant_id=tenant, version=version, kind=kind, document=text, signals=len(catalog),
        description=description[:2000], created_by=actor, created_at=now,
    ))
    session.flush()
    _remember(tenant, version, catalog)
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.catalog.write",
                 target=f"catalog:{version}",
                 details={"kind": kind, "signals": len(catalog), "description": description},
                 request_id=request_id, now=now)
    return CatalogVersion(tenant, version, kind, len(catalog), description, actor, now)


def list_catalog_versions(session: Session, tenant: str) -> list[CatalogVersion]:
    """Every version of the tenant's catalog, oldest first (empty: the standard catalog)."""
    return [
        CatalogVersion(r.tenant_id, r.version, r.kind, r.signals, r.description,  # type: ignore[arg-type]
                       r.created_by, r.created_at)
        for r in session.scalars(select(SignalCatalogRow).where(
            SignalCatalogRow.tenant_id == tenant).order_by(SignalCatalogRow.version))
    ]
