"""Vehicle digital twins that reconcile: reported, desired and metadata state per vehicle.

Public surface (everything else in this package is internal):

- Reading: :func:`get_twin`, :func:`get_delta`, :func:`query_twins`,
  :func:`reconciliation_summary`, :func:`sync_twins`, :func:`select_twins`,
  :func:`desired_status_counts` (monitoring, across tenants); types :class:`Twin`,
  :class:`DesiredItem`, :class:`ReportedValue`, :class:`Ecu`, :class:`TwinSummary`,
  :class:`TwinPage`, :class:`ReconciliationSummary`.
- Desired state: :func:`set_desired` (optimistic concurrency), :func:`set_desired_by_query`.
- Entitlements (signed tokens as desired state, the car's features as reported state):
  :func:`set_entitlements`, :func:`twin_entitlements`, :func:`confirmed_tokens`; types :class:`DesiredToken`,
  :class:`TwinEntitlement`.
- What vehicles report (ingestion calls these): :func:`apply_reported` (values already in
  stored form: :func:`apply_stored_rows`, fastest in the order :func:`path_major` says),
  :func:`record_acks`, :func:`record_ecu_inventory`.
- ECU inventory: :func:`set_ecu`, :func:`delete_ecu`, :func:`list_ecus`, :func:`find_ecu`;
  twin fields of many vehicles by name: :func:`twin_fields`; the versions most installed
  on a hardware id across a tenant's fleet: :func:`software_version_counts`.
- The fleet query language: :func:`parse_query`.
- Reconciliation: :class:`Reconciler` (publishes signed, retained desired-state deltas).
- The change feed: :func:`hub_for`, :class:`ChangeHub`, :class:`TwinChange`.
"""

from drivetrain.cloud.twins.delivery import DeliveryReport, Reconciler, send_pending
from drivetrain.cloud.twins.desired import (
    BulkDesiredResult,
    expire_due,
    set_desired,
    set_desired_by_query,
)
from drivetrain.cloud.twins.dimensions import twin_fields
from drivetrain.cloud.twins.ecus import (
    delete_ecu,
    find_ecu,
    list_ecus,
    record_ecu_inventory,
    set_ecu,
    software_version_counts,
)
from drivetrain.cloud.twins.entitlements import (
    DesiredToken,
    TwinEntitlement,
    confirmed_tokens,
    set_entitlements,
    twin_entitlements,
)
from drivetrain.cloud.twins.feed import ChangeHub, TwinChange, hub_for
from drivetrain.cloud.twins.models import (
    DesiredItem,
    Ecu,
    ReportedValue,
    Twin,
    TwinPage,
    TwinSummary,
)
from drivetrain.cloud.twins.query import parse_query
from drivetrain.cloud.twins.reconcile import DEFAULT_TTL_S, effective_items
from drivetrain.cloud.twins.registry import sync_twins
from drivetrain.cloud.twins.reported import apply_reported, apply_stored_rows, record_acks
from drivetrain.cloud.twins.service import (
    ReconciliationSummary,
    desired_status_counts,
    get_delta,
    get_twin,
    query_twins,
    reconciliation_summary,
    select_twins,
)
from drivetrain.cloud.twins.upsert import path_major

__all__ = [
    "DEFAULT_TTL_S",
    "BulkDesiredResult",
    "ChangeHub",
    "DeliveryReport",
    "DesiredItem",
    "DesiredToken",
    "Ecu",
    "Reconciler",
    "ReconciliationSummary",
    "ReportedValue",
    "Twin",
    "TwinChange",
    "TwinEntitlement",
    "TwinPage",
    "TwinSummary",
    "apply_reported",
    "apply_stored_rows",
    "confirmed_tokens",
    "delete_ecu",
    "desired_status_counts",
    "effective_items",
    "expire_due",
    "find_ecu",
    "get_delta",
    "get_twin",
    "hub_for",
    "list_ecus",
    "parse_query",
    "path_major",
    "query_twins",
    "reconciliation_summary",
    "record_acks",
    "record_ecu_inventory",
    "select_twins",
    "send_pending",
    "set_desired",
    "set_desired_by_query",
    "set_ecu",
    "set_entitlements",
    "software_version_counts",
    "sync_twins",
    "twin_entitlements",
    "twin_fields",
]
