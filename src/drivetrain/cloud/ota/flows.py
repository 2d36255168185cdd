"""Rollouts across domains: targets from a twin query, each ECU's hardware id from the twin's
ECU inventory, one Director assignment per vehicle, and the update notices carried as a job of
the one dispatcher (``drivetrain.cloud.commands``) — OTA adds no dispatcher of its own.

The job is continuous (origin ``ota``): each wave adds its vehicles as deliveries of a signed
``ota.update`` command that tells the vehicle to run its Uptane update cycle; what the vehicle
installs is decided only by the signed Director and Image metadata, never by the notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.commands import (
    DeliveryDraft,
    JobStatus,
    Payload,
    RolloutPolicy,
    add_deliveries,
    close_job,
    create_job,
)
from drivetrain.cloud.ota.director import Director, EcuAssignment
from drivetrain.cloud.ota.images import ImageRepository
from drivetrain.cloud.twins import list_ecus, record_ecu_inventory, select_twins
from drivetrain.core.ota_report import OTA_NOTICE
from drivetrain.core.vss import Catalog

ORIGIN: Final = "ota"
NOTICE: Final = OTA_NOTICE


def select_targets(session: Session, tenant: str, query: str,
                   catalog: Catalog | None = None) -> list[str]:
    """The VINs of ``tenant`` that the twin query selects (``""``: every vehicle).

    Raises:
        QuerySyntaxError: the query does not parse.
    """
    return select_twins(session, tenant, query, catalog=catalog)


def ecu_assignments(session: Session, tenant: str, vin: str, ecu: str,
                    images_by_hardware: Mapping[str, str]) -> list[EcuAssignment]:
    """The ECU named ``ecu`` of ``vin`` (from the twin's inventory) with the build for its
    hardware id; none when the vehicle lacks that ECU or no build fits its hardware."""
    return [EcuAssignment(e.name, hw, images_by_hardware[hw])
            for e in list_ecus(session, vin, tenant=tenant)
            if e.name == ecu and (hw := e.hardware_id) is not None and hw in images_by_hardware]


def open_rollout_job(session: Session, *, tenant: str, actor: str, campaign: str,
                     image: str, rollout_id: str | None = None, optional: bool = False,
                     policy: RolloutPolicy | None = None, now: datetime | None = None) -> str:
    """The continuous job carrying a rollout's notices; returns its id. ``optional`` tells
    the vehicle to ask the driver's consent first; the policy's maintenance windows gate
    when the dispatcher hands notices out."""
    args: dict[str, object] = {"campaign": campaign, "image": image}
    if rollout_id is not None:
        args |= {"rollout": rollout_id, "optional": optional}
    job = create_job(session, tenant=tenant, actor=actor, payload=Payload.command(NOTICE, args),
                     continuous=True, origin=ORIGIN, name=f"OTA {campaign}", policy=policy,
                     now=now)
    return job.job_id


def dispatch_wave(
    session: Session, *, tenant: str, job_id: str, director: Director, images: ImageRepository,
    ecu: str, images_by_hardware: Mapping[str, str], vins: Sequence[str], wave: int,
    now: datetime | None = None,
) -> dict[str, list[EcuAssignment]]:
    """Sign each vehicle's Director assignment and queue its notice. Vehicles without the ECU
    or with hardware no build fits get no assignment (and are left out of the result)."""
    assigned: dict[str, list[EcuAssignment]] = {}
    for vin in vins:
        orders = ecu_assignments(session, tenant, vin, ecu, images_by_hardware)
        if not orders:
            continue
        director.assign(vin, orders, images, now=now)
        assigned[vin] = orders
    add_deliveries(session, job_id, [DeliveryDraft(v, label=f"wave-{wave}") for v in assigned],
                   tenant=tenant, now=now)
    return assigned


def record_installed(session: Session, vin: str, ecu: str, version: str,
                     now: datetime | None = None) -> None:
    """Write the version an ECU now runs into the twin (what ``software."ECU"`` queries see)."""
    record_ecu_inventory(session, vin, {ecu: (None, version)}, now=now)


def close_rollout_job(session: Session, *, tenant: str, actor: str, job_id: str,
                      reason: str, status: JobStatus = "finished",
                      now: datetime | None = None) -> None:
    """End the rollout's job; notices still queued are withdrawn with ``reason``."""
    close_job(session, job_id, tenant=tenant, actor=actor, reason=reason, status=status,
              now=now)
