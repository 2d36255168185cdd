"""The ingest worker the fleet acts rely on: the platform's own, or one for the act's duration.

When the embedded platform runs an ingest worker (``PlatformHandles.ingest``), the fleet's
telemetry goes to it; otherwise ``ingest_running`` starts one on the platform's transport —
the same worker ``drivetrain worker ingest`` runs, writing to the demo's lake and twins — and
stops it (after its last micro-batch) when the act ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from drivetrain.demo.acts import DemoContext


class IdleWaiter(Protocol):
    """What the acts need of the ingest worker."""

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every received message is processed; False on timeout."""
        ...


@contextmanager
def ingest_running(context: DemoContext) -> Iterator[IdleWaiter]:
    """The platform's ingest worker, or one started on its transport for this block."""
    existing = getattr(context.platform, "ingest", None)
    if existing is not None:
        yield existing
        return
    from drivetrain.cloud.ingest import IngestPipeline
    from drivetrain.cloud.ingest import TwinsReportedState
    from drivetrain.cloud.ingest import IngestWorker
    from drivetrain.cloud.lake import Lake

    platform = context.platform
    lake = Lake.open(context.settings)
    try:
        pipeline = IngestPipeline.from_settings(
            context.settings, platform.database, lake, TwinsReportedState()
        )
        worker = IngestWorker(platform.transport, pipeline).start()
        try:
            yield worker
        finally:
            # close, not stop: a stopped member left in the shared group would still be
            # handed its share of later acts' messages on this long-lived bus.
            worker.close()
    finally:
        lake.close()
