"""The change feed: an in-process publish/subscribe of twin changes.

The twins service records what it changed in the session (:func:`queue_changes`); once the
transaction commits — never before, so no subscriber sees a change that was rolled back — the
changes go to the :class:`ChangeHub` of that database engine (:func:`hub_for`). Subscribers
(the HTTP change stream, the reconciler) each get a bounded queue; a subscriber that falls
behind loses the oldest changes and is told how many (``Subscription.overflowed``), never
silently.

The hub lives in the process. Where processes share a broker (a fleet deployment with a
``BusBridge`` on the platform status bus, ``drivetrain.cloud.infra.bus``), each committed change
also travels as a ``twins`` status event, and changes committed by other processes (another
ingest worker) reach this hub's subscribers too.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.bus import StatusEvent, status_bus
from drivetrain.cloud.infra.waitqueue import WaitQueue

ChangeKind = Literal["reported", "desired", "converged", "failed", "ack", "ecu"]
CHANGE_KINDS: Final[tuple[ChangeKind, ...]] = (
    "reported", "desired", "converged", "failed", "ack", "ecu",
)
#: Changes a subscriber may have waiting before the oldest are dropped (and counted).
DEFAULT_QUEUE = 10_000
_SESSION_KEY: Final = "drivetrain.twins.changes"
#: The twins' domain on the platform status bus.
STATUS_DOMAIN: Final = "twins"


@dataclass(frozen=True, slots=True)
class TwinChange:
    """Something changed on one twin.

    Attributes:
        kind: ``reported`` (new reported values), ``desired`` (a desired-state write),
            ``converged``/``failed`` (items reached that status), ``ack`` (the vehicle
            acknowledged a version), ``ecu`` (the ECU inventory changed).
        vin, tenant: the twin.
        at: when the change was made (UTC).
        paths: the VSS paths (or ECU names) concerned.
        version: the desired version concerned, where there is one.
        detail: small extra facts (e.g. ``{"reason": ...}`` for failures).
    """

    kind: ChangeKind
    vin: str
    tenant: str
    at: datetime
    paths: tuple[str, ...] = ()
    version: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "vin": self.vin,
            "at": self.at.isoformat(),
            "paths": list(self.paths),
            "version": self.version,
            "detail": dict(self.detail),
        }

    def to_status(self) -> StatusEvent:
        """This change as a platform status event (to other processes)."""
        return StatusEvent(STATUS_DOMAIN, self.kind, self.tenant, self.vin, self.at,
                           {"paths": list(self.paths), "version": self.version,
                            "detail": dict(self.detail)})

    @classmethod
    def from_status(cls, status: StatusEvent) -> TwinChange | None:
        """The change a ``twins`` status event carries (None: not one)."""
        data = status.data
        paths, version = data.get("paths", []), data.get("version")
        if (status.domain != STATUS_DOMAIN or status.kind not in CHANGE_KINDS
                or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)
                or not (version is None or isinstance(version, int))):
            return None
        detail = data.get("detail")
        return cls(status.kind, status.subject, status.tenant, status.at,
                   tuple(paths), version, detail if isinstance(detail, dict) else {})


class Subscription(WaitQueue[TwinChange]):
    """One subscriber's queue of changes; made by :meth:`ChangeHub.subscribe`."""

    def __init__(
        self, hub: ChangeHub, tenant: str | None, kinds: frozenset[ChangeKind], max_queue: int
    ) -> None:
        super().__init__(max_queue)
        self._hub = hub
        self.tenant = tenant
        self.kinds = kinds

    def close(self) -> None:
        """Stop receiving changes; idempotent."""
        self.active = False
        self._hub._remove(self)
        self.wake()


class ChangeHub:
    """Fans committed twin changes out to subscribers (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []

    def subscribe(
        self,
        *,
        tenant: str | None,
        kinds: Iterable[ChangeKind] = CHANGE_KINDS,
        max_queue: int = DEFAULT_QUEUE,
    ) -> Subscription:
        """Receive changes of ``tenant``'s twins (every tenant's with None) of ``kinds``."""
        subscription = Subscription(self, tenant, frozenset(kinds), max_queue)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def wants(self, kind: ChangeKind) -> bool:
        """True when some subscriber receives changes of ``kind`` (else they need not be made)."""
        with self._lock:
            return any(kind in s.kinds for s in self._subscriptions)

    def publish(self, changes: Iterable[TwinChange]) -> None:
        """Hand ``changes`` to every matching subscriber."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for change in changes:
            for subscription in subscriptions:
                if change.kind in subscription.kinds and subscription.tenant in (
                    None,
                    change.tenant,
                ):
                    subscription._offer(change)


# One hub per engine: the twins service reaches it from a session's bind, so callers such as
# ingestion need not pass it along. Weak keys: a disposed, dropped engine takes its hub along.
_HUBS: weakref.WeakKeyDictionary[Engine, ChangeHub] = weakref.WeakKeyDictionary()
_HUBS_LOCK = threading.Lock()


def hub_for(engine: Engine) -> ChangeHub:
    """The change hub of ``engine`` (created on first use; it also receives the twin changes
    other processes commit, when a bus bridge carries them here)."""
    with _HUBS_LOCK:
        hub = _HUBS.get(engine)
        if hub is None:
            hub = _HUBS[engine] = ChangeHub()
            created = hub
        else:
            return hub

    def from_elsewhere(events: list[StatusEvent]) -> None:
        changes = [c for c in (TwinChange.from_status(e) for e in events) if c is not None]
        if changes:
            created.publish(changes)

    status_bus(engine).on_remote(from_elsewhere)
    return created


def session_hub(session: Session) -> ChangeHub | None:
    """The hub of the session's engine if one exists (nobody subscribed: None)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _HUBS_LOCK:
        return _HUBS.get(engine)


def wants(session: Session, kind: ChangeKind) -> bool:
    """True when a subscriber of the session's engine receives ``kind`` changes, or changes
    travel to other processes."""
    hub = session_hub(session)
    return hub is not None and (hub.wants(kind) or status_bus(_engine(session)).relaying)


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def queue_changes(session: Session, changes: Iterable[TwinChange]) -> None:
    """Publish ``changes`` to the engine's hub once the session's transaction commits."""
    hub = session_hub(session)
    if hub is None:
        return
    pending = session.info.get(_SESSION_KEY)
    if pending is None:
        pending = session.info[_SESSION_KEY] = []

        bus = status_bus(_engine(session))

        def after_commit(committed: Session) -> None:
            batch = list(pending)
            pending.clear()
            hub.publish(batch)
            if bus.relaying:
                bus.publish([c.to_status() for c in batch])

        def after_rollback(_session: Session) -> None:
            pending.clear()

        event.listen(session, "after_commit", after_commit)
        event.listen(session, "after_soft_rollback", lambda s, _t: after_rollback(s))
    pending.extend(changes)
