"""``drivetrain worker ingest`` with a CPU clock around each stage of a message's way in.

``benchmarks/ingest.py --worker-stages`` launches the realistic shape's worker process as
``python benchmarks/_worker_stages.py OUT worker ingest ...`` instead of
``python -m drivetrain worker ingest ...``. Each wrapped function adds the CPU time of the
thread that ran it (``time.thread_time``: no profiler in the way, and what other threads do
meanwhile is not counted) to its stage; on exit the totals, call counts and each thread's
own CPU time are written to ``OUT`` as JSON. A wrapper costs about a microsecond per call.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: (module, object in it or "", function, stage): nested stages are named under their parent.
STAGES = (
    ("drivetrain.core.transport.mqtt_subscribe", "Subscriptions", "received",
     "MQTT network thread: routing a received message (after paho parsed it)"),
    ("drivetrain.cloud.ingest.worker", "IngestWorker", "_receive",
     "delivery thread: queueing a message for the worker"),
    ("drivetrain.cloud.ingest.worker", "IngestWorker", "_collect",
     "worker: collecting a micro-batch from its queue"),
    ("drivetrain.cloud.ingest.pipeline", "IngestPipeline", "process", "pipeline"),
    ("drivetrain.cloud.ingest.pipeline", "", "open_message", "pipeline/opening"),
    ("drivetrain.cloud.ingest.envelopes", "", "parse", "pipeline/opening/envelope header"),
    ("drivetrain.core.wire.envelope", "Envelope", "verify", "pipeline/opening/signature"),
    ("drivetrain.core.wire.envelope", "Envelope", "verify_mac", "pipeline/opening/session MAC"),
    ("drivetrain.cloud.ingest.envelopes", "", "decode_sample_arrays",
     "pipeline/opening/Arrow body"),
    ("drivetrain.cloud.ingest.envelopes", "", "body_of_arrays", "pipeline/opening/to columns"),
    ("drivetrain.cloud.ingest.pipeline", "", "route_telemetry", "pipeline/routing"),
    ("drivetrain.cloud.ingest.telemetry_route", "", "_refused_samples",
     "pipeline/routing/sample dead letters"),
    ("drivetrain.cloud.ingest.telemetry_route", "", "_append_to_lake",
     "pipeline/routing/lake append"),
    ("drivetrain.cloud.ingest.tally", "Tally", "finish", "pipeline/commit"),
    ("drivetrain.cloud.ingest.records", "", "add_dead_letters", "pipeline/commit/dead letters"),
    ("drivetrain.cloud.ingest.records", "", "mark_seen", "pipeline/commit/batch-id ledger"),
    ("drivetrain.cloud.ingest.records", "", "bump_counters", "pipeline/commit/counters"),
    ("drivetrain.core.transport.mqtt", "MqttTransport", "acknowledge", "worker: acknowledging"),
    ("drivetrain.cloud.ingest.pipeline", "IngestPipeline", "flush_reported",
     "worker: twins' reported state (flushed every 2 s)"),
)  # fmt: skip

_stages: dict[str, list[float]] = {}
_threads: dict[str, float] = {}


def _timed(function: Callable[..., Any], stage: str) -> Callable[..., Any]:
    clock = time.thread_time
    total = _stages.setdefault(stage, [0.0, 0])

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            total[0] += clock() - started
            total[1] += 1

    return timed


def _install() -> None:
    for module_name, holder, name, stage in STAGES:
        module = importlib.import_module(module_name)
        owner = getattr(module, holder) if holder else module
        setattr(owner, name, _timed(getattr(owner, name), stage))
    run = threading.Thread.run

    def counted_run(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            _threads[self.name] = _threads.get(self.name, 0.0) + time.thread_time()

    threading.Thread.run = counted_run  # type: ignore[method-assign]


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    _install()

    def dump() -> None:
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"stages": _stages, "threads": _threads}, f, indent=1)

    atexit.register(dump)
    from drivetrain.launcher import main as drivetrain

    sys.argv = ["drivetrain", *args]
    drivetrain()


if __name__ == "__main__":
    main()
