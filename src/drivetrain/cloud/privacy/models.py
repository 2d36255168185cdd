"""The privacy domain's tables: pseudonym keys, per-vehicle consent, the purpose ledger."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime
from drivetrain.cloud.infra.region_stores import register_regional_table, register_relocation


class PseudonymKeyRow(Base):
    """One version of the secret key a tenant's vehicle ids are pseudonymised with in
    analytical data. The highest version is current (new data); earlier ones are kept so
    that data written under them is still found (access, erasure). Never deleted by rotation.
    """

    __tablename__ = "privacy_pseudonym_keys"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True, server_default="1")
    # 32 random bytes, base64; never leaves the privacy domain.
    key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentRow(Base):
    """Which privacy categories of a vehicle's data may be stored (its current consent).

    ``region`` set: the vehicle is registered, and its ``categories`` and ``source`` are in
    that region's store (:class:`ConsentContentRow`); here they are empty. Null: a vehicle
    the registry does not know (no region to keep it in), or a row written before consent
    was kept per region (the next ``drivetrain db upgrade`` moves it).
    """

    __tablename__ = "privacy_consent"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    # Space-separated, sorted category names.
    categories: Mapped[str] = mapped_column(Text)
    # Where the consent came from: "driver-app", "contract", "operator"...
    source: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    region: Mapped[str | None] = mapped_column(String(8), nullable=True)


class ConsentContentRow(Base):
    """What a registered vehicle's consent says, kept in its region's store
    (``drivetrain.cloud.infra.region_stores``) under the VIN of its :class:`ConsentRow`."""

    __tablename__ = "privacy_consent_contents"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    categories: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(80))


class PurposeGrantRow(Base):
    """One consent a person gave for one purpose over some categories of a vehicle's data.

    The ledger is append-only: a grant is never edited, only stamped ``withdrawn_at`` once;
    giving consent again adds a new row. ``grant_id`` orders the ledger (its versions).
    """

    __tablename__ = "privacy_purpose_grants"

    grant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    vin: Mapped[str] = mapped_column(String(17), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    # Space-separated, sorted category names.
    categories: Mapped[str] = mapped_column(Text)
    # Who consented: owner, driver or fleet.
    person: Mapped[str] = mapped_column(String(16))
    # The client a third party reads with; None: the tenant's own clients.
    recipient: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source: Mapped[str] = mapped_column(String(80))
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    region: Mapped[str | None] = mapped_column(String(8), nullable=True)


class PurposeGrantContentRow(Base):
    """The personal part of one ledger grant, kept in the vehicle's region store."""

    __tablename__ = "privacy_purpose_grant_contents"

    grant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    categories: Mapped[str] = mapped_column(Text)
    person: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(80))


class DataRequestRow(Base):
    """A data subject's request (access or erasure), with its legal deadline and outcome."""

    __tablename__ = "privacy_requests"

    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    # Access: the VINs, space-separated. Erasure: their lake pseudonyms only (the VIN is part
    # of what is erased; the pseudonym lets a restored backup be erased again).
    subjects: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # JSON: what was done (archive location, rows per table, lake rows removed) or the error.
    outcome: Mapped[str] = mapped_column(Text)


class PrivacyBudgetSpendRow(Base):
    """One differentially private release charged to a tenant's privacy budget (append-only)."""

    __tablename__ = "privacy_budget_spends"

    spend_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    epsilon: Mapped[float] = mapped_column(Float)
    spent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    # What was released (the statistic and its parameters), for the tenant's own review.
    query: Mapped[str] = mapped_column(Text)


class VehicleOwnerRow(Base):
    """An owner's account (an OAuth2 client of role ``owner``) bound to one vehicle: the
    owner, a lessee or the fleet account that holds the EU Data Act rights to its data.

    Which person holds which vehicle: kept in the vehicle's region store (no foreign key to
    the state database's tenants, which a dedicated store does not have)."""

    __tablename__ = "privacy_vehicle_owners"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    # owner, lessee or fleet
    relation: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime())


class DataActGrantRow(Base):
    """The Data Act side of one ledger grant: which containers an owner shared with the
    grant's recipient (the ledger row holds the purpose, categories, period and withdrawal)."""

    __tablename__ = "privacy_data_act_grants"

    grant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    vin: Mapped[str] = mapped_column(String(17), index=True)
    # Space-separated, sorted container names.
    containers: Mapped[str] = mapped_column(Text)
    # The owner's client that gave it.
    granted_by: Mapped[str] = mapped_column(String(128))
    # Set: the vehicle is registered and ``containers`` and ``granted_by`` are in that region's
    # store (:class:`DataActGrantContentRow`), empty here.
    region: Mapped[str | None] = mapped_column(String(8), nullable=True)


class DataActGrantContentRow(Base):
    """The personal part of one Data Act grant, kept in the vehicle's region store."""

    __tablename__ = "privacy_data_act_grant_contents"

    grant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    containers: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(128))


class DataActAccessRow(Base):
    """One Data Act read of a vehicle's data, allowed or refused: the owner's access log."""

    __tablename__ = "privacy_data_act_access"

    access_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True
    )
    vin: Mapped[str] = mapped_column(String(17), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    # owner or third_party
    party: Mapped[str] = mapped_column(String(16))
    grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What was read: latest, download, stream (opened), streamed (what it sent, at its end).
    action: Mapped[str] = mapped_column(String(16))
    containers: Mapped[str] = mapped_column(Text)
    value_count: Mapped[int] = mapped_column(Integer)
    byte_count: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # allowed or refused; a refusal names its error.
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set: the vehicle is registered and who read what (client, party, grant, action,
    # containers, counts, error) is in that region's store (:class:`DataActAccessContentRow`);
    # here those columns are empty (counts 0). The time and outcome stay here.
    region: Mapped[str | None] = mapped_column(String(8), nullable=True)


class DataActAccessContentRow(Base):
    """Who read what in one Data Act access, kept in the vehicle's region store."""

    __tablename__ = "privacy_data_act_access_contents"

    access_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    party: Mapped[str] = mapped_column(String(16))
    grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    containers: Mapped[str] = mapped_column(Text)
    value_count: Mapped[int] = mapped_column(Integer)
    byte_count: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DataActMeterRow(Base):
    """What one recipient read of a tenant's vehicles in one month (compensation metering;
    names no vehicle, so it is kept as a billing record when a vehicle is erased)."""

    __tablename__ = "privacy_data_act_metering"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    recipient: Mapped[str] = mapped_column(String(128), primary_key=True)
    # YYYY-MM (UTC)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    value_count: Mapped[int] = mapped_column(Integer)
    byte_count: Mapped[int] = mapped_column(Integer)


class DataActRecipientRow(Base):
    """A business recipient's standing for compensation: a small or medium enterprise pays
    cost only (EU Data Act Art. 9(4))."""

    __tablename__ = "privacy_data_act_recipients"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sme: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


OWNERS = register_regional_table(cast(Table, VehicleOwnerRow.__table__))
CONSENT_CONTENTS = register_regional_table(cast(Table, ConsentContentRow.__table__))
GRANT_CONTENTS = register_regional_table(cast(Table, PurposeGrantContentRow.__table__))
DATA_ACT_GRANT_CONTENTS = register_regional_table(cast(Table, DataActGrantContentRow.__table__))
DATA_ACT_ACCESS_CONTENTS = register_regional_table(
    cast(Table, DataActAccessContentRow.__table__)
)
register_relocation("drivetrain.cloud.privacy.regional:relocate_privacy")
