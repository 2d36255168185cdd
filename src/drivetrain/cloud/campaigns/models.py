"""The campaigns domain's tables: campaigns and their definition versions, the tenant's
approval policy, signal catalogs, vehicle models and decoder manifests.

A campaign's definitions are documents (``CampaignSpec.to_dict``, JSON) written once per
version and never changed after approval; the campaign row holds its life-cycle state and the
wire-version counters. Per-vehicle delivery state is not here: it lives with the dispatcher
(``drivetrain.cloud.commands``), read through its public functions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


class CampaignPolicyRow(Base):
    """How a tenant runs campaigns: whether approval needs a second person."""

    __tablename__ = "campaign_policies"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    require_second_approver: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CampaignRow(Base):
    """One campaign: its life cycle, the version in force, and its wire-version counters."""

    __tablename__ = "campaigns"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # The approved definition in force (None until the first approval) and the newest written.
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    # The dispatcher job that carries installs and withdrawals (made when it starts).
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # lifecycle.WireVersions
    content_version: Mapped[int] = mapped_column(Integer, default=0)
    install_version: Mapped[int] = mapped_column(Integer, default=0)
    wire_counter: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class CampaignVersionRow(Base):
    """One version of a campaign's definition (a ``CampaignSpec`` document)."""

    __tablename__ = "campaign_versions"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    # The tenant's signal-catalog version it was checked against (None: the standard one).
    catalog_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # draft | approved | superseded
    author: Mapped[str] = mapped_column(String(120))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SignalCatalogRow(Base):
    """One version of a tenant's signal catalog: an overlay on the standard VSS catalog, or a
    whole VSS JSON export imported as the catalog."""

    __tablename__ = "signal_catalogs"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # overlay | import
    document: Mapped[str] = mapped_column(Text)  # the VSS JSON tree as given
    signals: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VehicleModelRow(Base):
    """A vehicle model of a tenant: the twins with this ``model`` decode CAN with its
    decoder manifests."""

    __tablename__ = "vehicle_models"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    latest_manifest: Mapped[int] = mapped_column(Integer, default=0)
    published_manifest: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DecoderManifestRow(Base):
    """One version of a model's decoder manifest: its DBC files, the DBC→VSS map and the
    signal-catalog version they decode into, signed with the cloud key."""

    __tablename__ = "decoder_manifests"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[str] = mapped_column(Text)  # canonical JSON of the manifest
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the document
    signature: Mapped[str] = mapped_column(Text)  # base64 Ed25519 over the document
    key_id: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
