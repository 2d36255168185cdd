"""Commands and jobs: signed messages to one vehicle or a query-selected group, rolled out at a
controlled rate, followed per vehicle — the one dispatcher every domain that acts on vehicles
reuses (collection campaigns and entitlements now; OTA rollouts and security responses later).

Public surface (everything else in this package is internal):

- Creating: :func:`send_command` (one vehicle), :func:`create_job` (a group, any downlink
  payload, optionally continuous), :class:`Payload`, :class:`RolloutPolicy`,
  :class:`MaintenanceWindow`, :data:`MAX_RETRIES`.
- Following: :func:`get_job`, :func:`list_jobs`, :func:`list_deliveries`, :func:`job_counts`,
  :func:`open_job_progress` (monitoring, across tenants); types :class:`Job`,
  :class:`JobProgress`, :class:`Delivery`, :class:`DeliveryCounts`, :class:`DeliveryPage`;
  the closed sets :data:`DELIVERY_STATES`, :data:`JOB_STATUSES`.
- Changing: :func:`cancel_job`; for owners of continuous jobs :func:`add_deliveries`,
  :func:`cancel_deliveries`, :func:`latest_deliveries`, :func:`close_job`,
  :class:`DeliveryDraft`.
- Running: :class:`Dispatcher` (``run_once`` or a background thread).

See docs/commands.md.
"""

from drivetrain.cloud.commands.dispatcher import Dispatcher, DispatcherStats, RoundReport
from drivetrain.cloud.commands.machine import (
    DELIVERY_STATES,
    FINAL_STATES,
    JOB_STATUSES,
    NO_LINK_REASON,
    DeliveryCounts,
    DeliveryState,
    JobStatus,
)
from drivetrain.cloud.commands.models import Delivery, Job
from drivetrain.cloud.commands.payloads import Payload
from drivetrain.cloud.commands.policy import MAX_RETRIES, MaintenanceWindow, RolloutPolicy
from drivetrain.cloud.commands.rounds import RefusedAck
from drivetrain.cloud.commands.service import (
    DeliveryDraft,
    DeliveryPage,
    JobProgress,
    add_deliveries,
    cancel_deliveries,
    cancel_job,
    close_job,
    create_job,
    get_job,
    job_counts,
    latest_deliveries,
    list_deliveries,
    list_jobs,
    open_job_progress,
    send_command,
)

__all__ = [
    "DELIVERY_STATES",
    "FINAL_STATES",
    "JOB_STATUSES",
    "MAX_RETRIES",
    "NO_LINK_REASON",
    "Delivery",
    "DeliveryCounts",
    "DeliveryDraft",
    "DeliveryPage",
    "DeliveryState",
    "Dispatcher",
    "DispatcherStats",
    "Job",
    "JobProgress",
    "JobStatus",
    "MaintenanceWindow",
    "Payload",
    "RefusedAck",
    "RolloutPolicy",
    "RoundReport",
    "add_deliveries",
    "cancel_deliveries",
    "cancel_job",
    "close_job",
    "create_job",
    "get_job",
    "job_counts",
    "latest_deliveries",
    "list_deliveries",
    "list_jobs",
    "open_job_progress",
    "send_command",
]
