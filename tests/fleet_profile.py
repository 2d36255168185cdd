"""The suite's run in the fleet profile (``scripts/test --profile fleet``, or
``DRIVETRAIN_TEST_PROFILE=fleet``): what the root conftest swaps, and what it selects out.

In the fleet profile every test runs with the configuration an operator gives a fleet process,
in the environment where ``load_settings`` reads it (``DRIVETRAIN_PROFILE=fleet``,
``DRIVETRAIN_DATABASE_URL``, ``DRIVETRAIN_BROKER_URL``, ``DRIVETRAIN_BACKBONE_URL``):

* state: PostgreSQL — the ``database`` fixture's PostgreSQL side only; a test with a temp dir
  or a database fixture gets a fresh schema of its own, the others this worker's database;
* vehicle link: a real Mosquitto of this pytest worker (``PrivateBroker``), since ingest's
  shared subscription on the shared broker would take other concurrent runs' messages;
* backbone: a real one-node NATS JetStream of this worker (``LocalJetStream``), and a
  ``DRIVETRAIN_BACKBONE_NAMESPACE`` of each test's own, so a consumer group a test creates
  does not read what earlier tests of the worker left on the streams (groups start at a
  stream's first message); the namespace's streams are deleted after the test.

The lake stays the local Parquet lake (``lake_url`` is a setting of its own, not of the
profile; its object-storage tests run in both). Tests that are embedded by nature carry
``@pytest.mark.embedded_only(reason=...)``; they and the SQLite parametrizations are
deselected, counted and listed in the run's summary — never skipped silently.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

PROFILE_ENV = "DRIVETRAIN_TEST_PROFILE"
SQLITE_REASON = "SQLite state database (the fleet profile's state is PostgreSQL)"


def test_profile() -> str:
    """The profile the suite runs in: ``embedded`` (the default) or ``fleet``.

    Raises:
        pytest.UsageError: any other value.
    """
    profile = os.environ.get(PROFILE_ENV, "embedded").strip().lower() or "embedded"
    if profile not in {"embedded", "fleet"}:
        raise pytest.UsageError(f"{PROFILE_ENV}={profile!r}: expected 'embedded' or 'fleet'")
    return profile


FLEET = test_profile() == "fleet"
test_profile.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def deselect_embedded_only(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the fleet profile, take out the SQLite parametrizations and the tests marked
    ``embedded_only``, telling pytest (they count as deselected) and keeping the reasons for
    :func:`report_deselected`."""
    kept: list[pytest.Item] = []
    out: list[tuple[str, str]] = []
    for item in items:
        marker = item.get_closest_marker("embedded_only")
        callspec = getattr(item, "callspec", None)
        if marker is not None:
            reason = str(marker.kwargs.get("reason") or (marker.args[0] if marker.args else ""))
            if not reason:
                raise pytest.UsageError(f"{item.nodeid}: embedded_only needs reason=...")
            out.append((item.nodeid, reason))
        elif callspec is not None and callspec.params.get("backend") == "sqlite":
            out.append((item.nodeid, SQLITE_REASON))
        else:
            kept.append(item)
    if out:
        wanted = {nodeid for nodeid, _ in out}
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid in wanted])
        items[:] = kept
    config.stash[_DESELECTED] = out
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller reports them
        config.workeroutput[_WORKER_KEY] = out  # type: ignore[attr-defined]


def gather_deselected(config: pytest.Config, workeroutput: dict[str, object]) -> None:
    """On the pytest-xdist controller: keep what a worker deselected (every worker collects
    the whole run, so the first one that reports is the list)."""
    out = workeroutput.get(_WORKER_KEY)
    if out is not None and _DESELECTED not in config.stash:
        config.stash[_DESELECTED] = [(str(n), str(r)) for n, r in out]  # type: ignore[attr-defined]


_DESELECTED = pytest.StashKey[list[tuple[str, str]]]()
_WORKER_KEY = "fleet_profile_deselected"


def report_deselected(reporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The summary of what the fleet profile left out: each embedded-only test with its
    reason, and the SQLite parametrizations counted per directory."""
    out = config.stash.get(_DESELECTED, [])
    reporter.write_sep("-", f"fleet profile: {len(out)} tests deselected as embedded-only")
    by_dir = Counter(
        nodeid.split("::")[0].rsplit("/", 1)[0] for nodeid, reason in out if reason == SQLITE_REASON
    )
    for folder, count in sorted(by_dir.items()):
        reporter.write_line(f"{count:5d}  {folder}: [sqlite] parametrizations ({SQLITE_REASON})")
    for nodeid, reason in sorted(out):
        if reason != SQLITE_REASON:
            reporter.write_line(f"       {nodeid}: {reason}")


class FleetServices:
    """This worker's Mosquitto and JetStream node, started on first use, stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stack = ExitStack()
        self._broker_url: str | None = None
        self._backbone_url: str | None = None
        self._janitor: Any = None

    def broker_url(self) -> str:
        if self._broker_url is None:
            from drivetrain.core.transport.testing import PrivateBroker

            broker = PrivateBroker(self.root / "mosquitto")
            broker.start()
            self._stack.callback(broker.kill)
            self._broker_url = broker.url
        return self._broker_url

    def backbone_url(self) -> str:
        if self._backbone_url is None:
            from drivetrain.core.transport.jetstream_local import LocalJetStream

            node = self._stack.enter_context(LocalJetStream(self.root / "nats", nodes=1))
            self._backbone_url = node.url
        return self._backbone_url

    def drop_namespace(self, namespace: str) -> None:
        """Delete the backbone streams of ``namespace`` (those a test created; none: nothing)."""
        if self._backbone_url is None:
            return
        if self._janitor is None:
            from drivetrain.core.transport.jetstream import JetStreamTransport

            self._janitor = self._stack.enter_context(
                JetStreamTransport(self._backbone_url, client_id="fleet-janitor", streams=()))
        from drivetrain.core.transport.jetstream_streams import BACKBONE_STREAMS, namespaced

        self._janitor.delete_streams([namespaced(s, namespace).name for s in BACKBONE_STREAMS])

    def close(self) -> None:
        self._stack.close()


def fleet_services(root: Path) -> Iterator[FleetServices]:
    services = FleetServices(root)
    try:
        yield services
    finally:
        services.close()
