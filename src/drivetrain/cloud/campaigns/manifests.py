"""Vehicle models and their decoder manifests.

A **vehicle model** (``compact-bev``) is what the twins' ``model`` field names. Each of its
**decoder manifests** (versioned 1, 2, ...) carries the model's DBC file(s) and DBC→VSS map
and the tenant signal-catalog version the map decodes into
(``drivetrain.core.can.manifest``), with the catalog entries of the decoded signals the
standard VSS catalog lacks or defines otherwise (the tenant's custom signals), so the vehicle
— which knows only the standard catalog — accepts the map and campaigns naming them. A manifest is checked before it is stored — its DBCs must
load and its map must fit them and the catalog, exactly as a vehicle will check it — and
signed with the cloud key (an Ed25519 signature over its canonical JSON, kept with it).
**Publishing** a version sends it, as a signed ``DECODER_MANIFEST`` message, to every vehicle
of the model through the dispatcher (a job of origin ``decoder``); each vehicle switches to it
without a restart, acknowledges it, and reports the version in force in its ECU inventory
(entry ``DecoderManifest``), so its twin shows it (``software."DecoderManifest"``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.campaigns.catalogs import tenant_catalog
from drivetrain.cloud.campaigns.models import DecoderManifestRow, VehicleModelRow
from drivetrain.cloud.commands import Job, Payload, RolloutPolicy, create_job
from drivetrain.cloud.infra import record_audit
from drivetrain.core.can import DecoderManifest, parse_signal_map
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError, WireFormatError
from drivetrain.core.vss import Catalog, builtin_catalog, vss_tree
from drivetrain.core.wire import MessageKind
from drivetrain.edge import CanDecoding

_MODEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
#: Manifests wait for each vehicle's acknowledgement as long as it takes.
MANIFEST_POLICY: Final = RolloutPolicy(timeout_s=None, freshness_s=30 * 86_400.0)


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """A stored manifest version: its document, digest and signature, and where it went."""

    model: str
    version: int
    manifest: DecoderManifest
    digest: str
    signature: str
    key_id: str
    signals: int
    created_by: str
    created_at: datetime
    job_id: str | None
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class VehicleModel:
    """A vehicle model with its newest and published manifest versions."""

    model: str
    name: str
    latest_manifest: int
    published_manifest: int | None
    created_by: str
    created_at: datetime


def _model(row: VehicleModelRow) -> VehicleModel:
    return VehicleModel(row.model_id, row.name, row.latest_manifest, row.published_manifest,
                        row.created_by, row.created_at)


def _model_row(session: Session, tenant: str, model_id: str) -> VehicleModelRow:
    row = session.get(VehicleModelRow, (tenant, model_id)) if isinstance(model_id, str) else None
    if row is None:
        raise NotFoundError(f"vehicle model {model_id!r} does not exist")
    return row


def create_vehicle_model(
    session: Session, tenant: str, model_id: str, *, name: str, actor: str,
    now: datetime | None = None, request_id: str | None = None,
) -> VehicleModel:
    """Register a vehicle model (its manifests come next).

    Raises:
        BadInputError: a malformed id or name.
        ConflictError: the model exists.
    """
    now = now or datetime.now(UTC)
    if not isinstance(model_id, str) or not _MODEL.fullmatch(model_id):
        raise BadInputError(f"vehicle model id {model_id!r} is not valid; expected 1-80 of "
                            "letters, digits, '_', '.', '-' (the twins' model field)")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise BadInputError("vehicle model name: expected 1 to 200 characters")
    if session.get(VehicleModelRow, (tenant, model_id)) is not None:
        raise ConflictError(f"vehicle model {model_id!r} exists")
    row = VehicleModelRow(tenant_id=tenant, model_id=model_id, name=name, latest_manifest=0,
                          published_manifest=None, created_by=actor, created_at=now)
    session.add(row)
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.model.create",
                 target=f"model:{model_id}", details={"name": name}, request_id=request_id,
                 now=now)
    return _model(row)


def add_manifest(
    session: Session, tenant: str, model_id: str, *, dbc: dict[str, str], main: str,
    signal_map: str, key: SigningKey, actor: str, catalog_version: int | None = None,
    now: datetime | None = None, request_id: str | None = None,
) -> ManifestInfo:
    """Write the next manifest version of a model, checked (the DBCs load, the map fits them
    and the tenant catalog at ``catalog_version``, default the newest) and signed.

    Raises:
        NotFoundError: no such model, or no such catalog version.
        BadInputError: a malformed manifest, a DBC that does not load, a map that does not fit
            (DbcFormatError, SignalMapError, WireFormatError; the message names the problem).
    """
    now = now or datetime.now(UTC)
    row = _model_row(session, tenant, model_id)
    catalog, catalog_version = tenant_catalog(session, tenant, catalog_version)
    document_in = {
        "model": model_id, "version": row.latest_manifest + 1, "main": main, "dbc": dbc,
        "signal_map": signal_map, "catalog_version": catalog_version,
    }
    try:
        # Checked against the tenant catalog first (names the unknown path), then carried.
        checked = CanDecoding.from_manifest(DecoderManifest.from_dict(document_in), catalog)
        document_in["catalog"] = custom_entries(catalog, checked.paths)
        manifest = DecoderManifest.from_dict(document_in)
    except WireFormatError as e:
        raise BadInputError(str(e)) from e
    # Exactly as the vehicle will check it: the standard catalog plus the carried entries.
    decoding = CanDecoding.from_manifest(manifest, manifest.catalog_over(builtin_catalog()))
    document = manifest.canonical_json()
    row.latest_manifest = manifest.version
    session.add(DecoderManifestRow(
        tenant_id=tenant, model_id=model_id, version=manifest.version,
        document=document.decode(), digest=manifest.digest,
        signature=base64.b64encode(key.sign(document)).decode(), key_id=key.key_id,
        created_by=actor, created_at=now,
    ))
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.manifest.create",
                 target=f"model:{model_id}",
                 details={"version": manifest.version, "digest": manifest.digest,
                          "catalog_version": catalog_version, "signals": len(decoding.paths)},
                 request_id=request_id, now=now)
    return get_manifest(session, tenant, model_id, manifest.version)


def custom_entries(catalog: Catalog, paths: Iterable[str]) -> dict[str, Any] | None:
    """The VSS JSON tree of ``paths``' entries in ``catalog`` that the standard catalog lacks
    or defines otherwise (None: there are none)."""
    standard = builtin_catalog()
    specs = [catalog.get(p) for p in sorted(set(paths)) if p in catalog
             and (p not in standard or standard.get(p) != catalog.get(p))]
    if not specs:
        return None
    above = {".".join(s.path.split(".")[:i]) for s in specs
             for i in range(1, s.path.count(".") + 1)}
    return vss_tree(Catalog(specs, (b for p, b in catalog.branches.items() if p in above)))


def _info(row: DecoderManifestRow) -> ManifestInfo:
    manifest = DecoderManifest.from_dict(json.loads(row.document))
    signals = len(parse_signal_map(manifest.signal_map, f"manifest {row.version}", "toml").paths)
    return ManifestInfo(row.model_id, row.version, manifest, row.digest, row.signature,
                        row.key_id, signals, row.created_by, row.created_at, row.job_id,
                        row.published_at)


def get_manifest(session: Session, tenant: str, model_id: str, version: int) -> ManifestInfo:
    """One manifest version.

    Raises:
        NotFoundError: no such model or version.
    """
    _model_row(session, tenant, model_id)
    row = session.get(DecoderManifestRow, (tenant, model_id, version))
    if row is None:
        raise NotFoundError(f"vehicle model {model_id!r} has no decoder manifest {version}")
    return _info(row)


def manifest_catalog_version(
    session: Session, tenant: str, model_id: str, version: int
) -> int | None:
    """The signal-catalog version decoder manifest ``version`` of ``model_id`` names (None:
    the standard catalog).

    Raises:
        NotFoundError: no such model or version.
    """
    return get_manifest(session, tenant, model_id, version).manifest.catalog_version


def list_vehicle_models(session: Session, tenant: str) -> list[VehicleModel]:
    """The tenant's vehicle models, by id."""
    return [_model(r) for r in session.scalars(
        select(VehicleModelRow).where(VehicleModelRow.tenant_id == tenant)
        .order_by(VehicleModelRow.model_id))]


def list_manifests(session: Session, tenant: str, model_id: str) -> list[ManifestInfo]:
    """A model's manifest versions, oldest first.

    Raises:
        NotFoundError: no such model.
    """
    _model_row(session, tenant, model_id)
    return [_info(r) for r in session.scalars(
        select(DecoderManifestRow).where(DecoderManifestRow.tenant_id == tenant,
                                         DecoderManifestRow.model_id == model_id)
        .order_by(DecoderManifestRow.version))]


def publish_manifest(
    session: Session, tenant: str, model_id: str, version: int, *, actor: str,
    now: datetime | None = None, request_id: str | None = None,
) -> Job:
    """Send a manifest version to every vehicle of the model (a dispatcher job); returns the
    job, whose per-vehicle state follows the vehicles' acknowledgements.

    Raises:
        NotFoundError: no such model or version.
        ConflictError: the version is older than the one already published.
    """
    now = now or datetime.now(UTC)
    model = _model_row(session, tenant, model_id)
    info = get_manifest(session, tenant, model_id, version)
    if model.published_manifest is not None and version < model.published_manifest:
        raise ConflictError(f"decoder manifest {version} of {model_id!r} is older than the "
                            f"published version {model.published_manifest}")
    job = create_job(
        session, tenant=tenant, actor=actor, origin="decoder",
        name=f"{model_id} decoder manifest {version}",
        payload=Payload(MessageKind.DECODER_MANIFEST, info.manifest.to_dict()),
        query=f"model == {json.dumps(model_id)}", policy=MANIFEST_POLICY, now=now,
        request_id=request_id,
    )
    row = session.get(DecoderManifestRow, (tenant, model_id, version))
    assert row is not None
    row.job_id, row.published_at = job.job_id, now
    model.published_manifest = version
    record_audit(session, tenant=tenant, actor=actor, action="campaigns.manifest.publish",
                 target=f"model:{model_id}",
                 details={"version": version, "job": job.job_id,
                          "vehicles": job.counts.total}, request_id=request_id, now=now)
    return job
