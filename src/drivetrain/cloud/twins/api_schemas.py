"""HTTP bodies of ``/v1/twins`` (Pydantic v2, at the edge only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.twins.desired import MAX_VALUES_PER_WRITE, BulkDesiredResult
from drivetrain.cloud.twins.history import HistoryPoint
from drivetrain.cloud.twins.models import DesiredItem, Ecu, ItemStatus, Twin, TwinPage
from drivetrain.cloud.twins.reconcile import MAX_TTL_S, build_delta, effective_items
from drivetrain.cloud.twins.service import ReconciliationSummary
from drivetrain.cloud.twins.values import from_ns, values_equal

Scalar = bool | int | float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DesiredWrite(_Strict):
    """A desired-state write: VSS actuator paths to values (null removes a path)."""

    values: dict[str, Scalar | None] = Field(
        max_length=MAX_VALUES_PER_WRITE,
        examples=[{"Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit": 80}],
    )
    ttl_s: int | None = Field(
        None, ge=1, le=MAX_TTL_S,
        description="Seconds the values are wanted before they expire; default 7 days.",
    )


class DesiredByQuery(_Strict):
    """Set values on every twin a fleet query selects."""

    query: str = Field(max_length=4000, examples=['region == "EU"'])
    values: dict[str, Scalar] = Field(min_length=1, max_length=MAX_VALUES_PER_WRITE)
    ttl_s: int | None = Field(None, ge=1, le=MAX_TTL_S)


class BulkDesiredOut(BaseModel):
    matched: int = Field(description="Twins the query selected; each got a new version.")
    values: dict[str, Scalar]
    set_at: datetime

    @classmethod
    def of(cls, result: BulkDesiredResult) -> BulkDesiredOut:
        return cls(matched=result.matched, values=dict(result.values), set_at=result.set_at)


class EcuWrite(_Strict):
    hardware_id: str | None = Field(None, max_length=120, examples=["BMS-HW-0420"])
    software_version: str | None = Field(None, max_length=64, examples=["2.4.0"])


class EcuOut(BaseModel):
    name: str
    hardware_id: str | None
    software_version: str | None
    source: str
    updated_at: datetime

    @classmethod
    def of(cls, ecu: Ecu) -> EcuOut:
        return cls(
            name=ecu.name, hardware_id=ecu.hardware_id, software_version=ecu.software_version,
            source=ecu.source, updated_at=ecu.updated_at,
        )


class ReportedOut(BaseModel):
    value: Scalar | None
    ts: datetime = Field(description="When the vehicle measured the value.")
    updated_at: datetime = Field(description="When the cloud stored it.")


class ItemOut(BaseModel):
    path: str
    value: Scalar
    status: ItemStatus
    set_version: int
    set_at: datetime
    set_by: str
    expires_at: datetime | None
    status_at: datetime | None = Field(description="When it converged or failed.")
    time_to_converge_s: float | None
    reason: str | None
    reported: Scalar | None = Field(description="The vehicle's latest value for the path.")
    in_sync: bool = Field(description="The reported value equals the desired one (a converged "
                          "item out of sync has drifted; writing it again re-sends it).")

    @classmethod
    def of(cls, item: DesiredItem, reported: Scalar | None) -> ItemOut:
        return cls(in_sync=values_equal(reported, item.value),
            path=item.path, value=item.value, status=item.status, set_version=item.set_version,
            set_at=item.set_at, set_by=item.set_by, expires_at=item.expires_at,
            status_at=item.status_at, time_to_converge_s=item.time_to_converge_s,
            reason=item.reason, reported=reported,
        )


class DeltaOut(BaseModel):
    version: int
    values: dict[str, Scalar]
    expires_at: datetime | None


class DeliveryOut(BaseModel):
    sent_version: int | None
    sent_at: datetime | None
    acked_version: int | None
    acked_at: datetime | None


class CountsOut(BaseModel):
    pending: int
    converged: int
    failed: int


class TwinOut(BaseModel):
    """A twin: metadata, ECUs, reported and desired state, reconciliation and delta."""

    vin: str
    tenant: str
    model: str
    region: str
    owner: str | None
    version: int = Field(description="Desired-state version; the ETag is this, quoted.")
    desired_updated_at: datetime | None
    ecus: list[EcuOut]
    reported: dict[str, ReportedOut]
    desired: dict[str, Scalar]
    items: list[ItemOut]
    counts: CountsOut
    delta: DeltaOut
    delivery: DeliveryOut
    purpose: str | None = Field(
        None, description="The purpose the read named (query parameter 'purpose'), if any.")
    withheld: dict[str, str] = Field(
        default_factory=dict,
        description="Privacy categories whose reported values are not shown, each with why "
        "(no purpose named, the purpose may not use it, or no consent covers it).")

    @classmethod
    def of(
        cls,
        twin: Twin,
        now: datetime,
        *,
        shown: Callable[[str], bool] | None = None,
        purpose: str | None = None,
        withheld: Mapping[str, str] | None = None,
    ) -> TwinOut:
        """The body of ``twin`` at ``now``; reported values of paths ``shown`` refuses are
        left out (and so is the reported value beside a desired item)."""
        items = effective_items(twin.items, now)
        delta = build_delta(twin.version, twin.items, now)
        visible = {p: r for p, r in twin.reported.items() if shown is None or shown(p)}
        reported = {
            p: ReportedOut(value=r.value, ts=r.ts, updated_at=r.updated_at)
            for p, r in visible.items()
        }
        return cls(
            vin=twin.vin, tenant=twin.tenant, model=twin.model, region=twin.region,
            owner=twin.owner, version=twin.version, desired_updated_at=twin.desired_updated_at,
            ecus=[EcuOut.of(e) for e in twin.ecus],
            reported=reported,
            desired=twin.desired,
            items=[
                ItemOut.of(i, visible[i.path].value if i.path in visible else None)
                for i in items
            ],
            counts=CountsOut(
                pending=sum(i.status == "pending" for i in items),
                converged=sum(i.status == "converged" for i in items),
                failed=sum(i.status == "failed" for i in items),
            ),
            delta=DeltaOut(
                version=delta.version,
                values={p: v for p, v in delta.values.items() if v is not None},
                expires_at=from_ns(delta.expires_ns) if delta.expires_ns is not None else None,
            ),
            delivery=DeliveryOut(
                sent_version=twin.sent_version, sent_at=twin.sent_at,
                acked_version=twin.acked_version, acked_at=twin.acked_at,
            ),
            purpose=purpose,
            withheld=dict(withheld or {}),
        )


class TwinSummaryOut(BaseModel):
    vin: str
    model: str
    region: str
    owner: str | None
    version: int
    counts: CountsOut


class TwinPageOut(BaseModel):
    total: int = Field(description="Twins the query matches (all pages).")
    next_cursor: str | None = Field(description="Pass as cursor for the next page.")
    twins: list[TwinSummaryOut]

    @classmethod
    def of(cls, page: TwinPage) -> TwinPageOut:
        return cls(
            total=page.total,
            next_cursor=page.next_cursor,
            twins=[
                TwinSummaryOut(
                    vin=t.vin, model=t.model, region=t.region, owner=t.owner, version=t.version,
                    counts=CountsOut(pending=t.pending, converged=t.converged, failed=t.failed),
                )
                for t in page.twins
            ],
        )


class ReconciliationOut(BaseModel):
    twins: int
    items: int
    pending: int
    converged: int
    failed: int
    time_to_converge_p50_s: float | None
    time_to_converge_max_s: float | None
    failure_reasons: dict[str, int]
    pending_reasons: dict[str, int] = Field(
        description="Pending items that say why they wait, by reason (e.g. 'not delivered: "
                    "no vehicle link').")

    @classmethod
    def of(cls, summary: ReconciliationSummary) -> ReconciliationOut:
        return cls(
            twins=summary.twins, items=summary.items, pending=summary.pending,
            converged=summary.converged, failed=summary.failed,
            time_to_converge_p50_s=summary.time_to_converge_p50_s,
            time_to_converge_max_s=summary.time_to_converge_max_s,
            failure_reasons=summary.failure_reasons,
            pending_reasons=summary.pending_reasons,
        )


class HistoryPointOut(BaseModel):
    ts: datetime
    value: Scalar | None
    samples: int | None

    @classmethod
    def of(cls, point: HistoryPoint) -> HistoryPointOut:
        return cls(ts=point.ts, value=point.value, samples=point.samples)


class HistoryOut(BaseModel):
    vin: str
    path: str
    start: datetime
    end: datetime
    every: str | None
    agg: str | None
    points: list[HistoryPointOut]
