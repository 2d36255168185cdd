"""``GET /livez`` and ``GET /readyz``: the probes an orchestrator asks (Kubernetes liveness and
readiness, Compose health checks), unauthenticated.

- **Liveness** (``/livez``) says only that the process answers HTTP: it checks no dependency,
  so a database outage never makes an orchestrator restart every API replica at once.
- **Readiness** (``/readyz``) runs every :class:`ReadinessCheck` of the app — the state
  database (a trivial query), the telemetry lake (each region's storage root is, or can be
  created as, a writable directory) and, where one is configured, the vehicle link (the
  MQTT connection of this process, or else a TCP connection to the broker) — and answers
  200 when all pass, 503 naming the ones that failed. Other backends add theirs with
  :meth:`Readiness.add`.

Both are unauthenticated, so they reveal nothing an outsider could use: a check's ``detail``
is a fixed phrase ("unreachable", "not writable"), never a URL, path, host or exception text;
the cause goes to the server log. ``/healthz`` (database status and schema revisions) stays
for the existing clients and tools.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from drivetrain.cloud.infra import Database
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.regions import REGIONS
from drivetrain.core.settings import Settings

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

#: How long the broker check waits for a TCP connection, seconds (a probe must answer fast).
BROKER_CONNECT_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class CheckResult:
    """One dependency's state: ``detail`` is a fixed phrase safe to show anyone."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class ReadinessCheck:
    """A named dependency check; ``run`` never raises (a failure is a result)."""

    name: str
    run: Callable[[], CheckResult]


class Readiness:
    """The readiness checks of one app (``app.state.readiness``), run in order."""

    def __init__(self, checks: list[ReadinessCheck] | None = None) -> None:
        self._checks: list[ReadinessCheck] = list(checks or [])
        self._lock = threading.Lock()

    def add(self, check: ReadinessCheck) -> None:
        """Add ``check``, replacing one of the same name."""
        with self._lock:
            self._checks = [c for c in self._checks if c.name != check.name] + [check]

    @property
    def names(self) -> list[str]:
        with self._lock:
            return [c.name for c in self._checks]

    def run(self) -> list[tuple[str, CheckResult]]:
        """Every check's result; a check that raises counts as failed (and is logged)."""
        with self._lock:
            checks = list(self._checks)
        results = []
        for check in checks:
            try:
                result = check.run()
            except Exception as e:
                log.error("readiness check %s raised: %s", check.name, e, exc_info=e)
                result = CheckResult(False, "check failed")
            results.append((check.name, result))
        return results


def database_check(database: Database) -> ReadinessCheck:
    """The state database answers a trivial query."""

    def run() -> CheckResult:
        health = database.health()
        if health.ok:
            return CheckResult(True, "ok")
        log.warning("readiness: the state database is unavailable: %s", health.detail)
        return CheckResult(False, "unreachable")

    return ReadinessCheck("database", run)


def lake_roots(settings: Settings) -> dict[str, Path]:
    """Each region's lake storage root, as ``Lake.open(settings)`` resolves them."""
    data_dir = Path(settings.data_dir).expanduser().resolve()
    return {r: Path(settings.lake_roots.get(r, data_dir / "lake" / r)) for r in REGIONS}


def _writable_dir(root: Path) -> str | None:
    """None when ``root`` is a writable directory or can be created as one, else the cause."""
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            return "no existing ancestor"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this process"
    return None


def lake_check(settings: Settings) -> ReadinessCheck:
    """Every region's lake root is a writable directory (or can be created as one)."""

    def run() -> CheckResult:
        problems = {r: p for r, root in lake_roots(settings).items()
                    if (p := _writable_dir(root)) is not None}
        if not problems:
            return CheckResult(True, "ok")
        for region, problem in problems.items():
            log.warning("readiness: lake root of %s unusable: %s", region, problem)
        return CheckResult(False, "not writable: " + ", ".join(sorted(problems)))

    return ReadinessCheck("lake", run)


def broker_reachable_check(url: str) -> ReadinessCheck:
    """A TCP connection to the broker of ``url`` opens (an API process without a link of its
    own: the workers beside it hold the MQTT sessions)."""
    from drivetrain.core.transport import parse_broker_url

    def run() -> CheckResult:
        try:
            address = parse_broker_url(url)
            with socket.create_connection((address.host, address.port),
                                          timeout=BROKER_CONNECT_TIMEOUT_S):
                return CheckResult(True, "ok")
        except (OSError, DrivetrainError) as e:
            log.warning("readiness: the broker is unreachable: %s", e)
            return CheckResult(False, "unreachable")

    return ReadinessCheck("broker", run)


def backbone_reachable_check(url: str) -> ReadinessCheck:
    """A TCP connection opens to one of the JetStream servers of ``url`` (the fleet profile's
    backbone: a process that cannot reach it cannot announce what it commits)."""
    from drivetrain.core.transport.jetstream import parse_nats_url

    def run() -> CheckResult:
        try:
            servers = parse_nats_url(url)
        except (ValueError, DrivetrainError) as e:
            log.warning("readiness: the backbone URL is unusable: %s", e)
            return CheckResult(False, "unreachable")
        for server in servers:
            host, _, port = server.removeprefix("nats://").rpartition(":")
            try:
                with socket.create_connection(
                    (host.strip("[]"), int(port)), timeout=BROKER_CONNECT_TIMEOUT_S
                ):
                    return CheckResult(True, "ok")
            except (OSError, ValueError) as e:
                log.warning("readiness: backbone server %s is unreachable: %s", server, e)
        return CheckResult(False, "unreachable")

    return ReadinessCheck("backbone", run)


def link_check(is_connected: Callable[[], bool]) -> ReadinessCheck:
    """This process's own vehicle link is connected to the broker."""

    def run() -> CheckResult:
        return CheckResult(True, "ok") if is_connected() else CheckResult(False, "not connected")

    return ReadinessCheck("broker", run)


def default_readiness(settings: Settings, database: Database) -> Readiness:
    """Database, lake, (with ``broker_url``) broker and (fleet profile) backbone reachability."""
    checks = [database_check(database), lake_check(settings)]
    if settings.broker_url:
        checks.append(broker_reachable_check(settings.broker_url))
    if settings.profile == "fleet" and settings.backbone_url:
        checks.append(backbone_reachable_check(settings.backbone_url))
    return Readiness(checks)


class Liveness(BaseModel):
    status: Literal["ok"] = Field(description="Always ok: the process answers.")


class DependencyOut(BaseModel):
    name: str = Field(description="The dependency: database, lake, broker, ...")
    ok: bool
    detail: str = Field(description="A fixed phrase: ok, unreachable, not writable, ...")


class ReadinessOut(BaseModel):
    status: Literal["ready", "not_ready"]
    failed: list[str] = Field(description="Names of the dependencies that failed.")
    checks: list[DependencyOut]


@router.get("/livez", response_model=Liveness, summary="Liveness: the process answers")
def livez() -> Liveness:
    """200 whenever the process serves HTTP; checks no dependency (restart only a hung
    process, never all replicas for a database outage)."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=ReadinessOut,
    summary="Readiness: the database, lake and broker this process needs",
    responses={503: {"model": ReadinessOut, "description": "A dependency failed."}},
)
def readyz(request: Request, response: Response) -> ReadinessOut:
    """200 when every dependency check passes, 503 naming those that failed."""
    readiness = request.app.state.readiness
    assert isinstance(readiness, Readiness)
    results = readiness.run()
    failed = [name for name, result in results if not result.ok]
    if failed:
        response.status_code = 503
    return ReadinessOut(
        status="not_ready" if failed else "ready",
        failed=failed,
        checks=[DependencyOut(name=n, ok=r.ok, detail=r.detail) for n, r in results],
    )
