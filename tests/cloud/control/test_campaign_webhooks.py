"""Campaign webhook destinations: each committed batch's accepted samples of the campaign are
POSTed (the MQTT destination's document), signed with the campaign's secret, from a background
sender that never blocks ingestion, retries within bounds, and refuses internal addresses
unless the deployment allows them."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from campaign_kit import definition, run_round
from rig import Rig

from drivetrain.cloud.campaigns import approve_campaign, create_campaign
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest.webhooks import (
    CAMPAIGN_HEADER,
    SIGNATURE_HEADER,
    RefusedAddressError,
    WebhookPost,
    WebhookSender,
    signature,
    vetted_address,
    webhook_secret,
)
from drivetrain.core.transport import Message
from drivetrain.edge import Samples

BMS = ["2.3.1", "2.3.9", "2.4.0"]
BRAKE = "Vehicle.Acceleration.Longitudinal"
KEY = b"k" * 48


@dataclass
class Hook:
    """A local HTTP server recording the POSTs it gets; ``answer`` picks each status."""

    answer: Callable[[int], int] = lambda n: 200
    delay_s: float = 0.0
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(made.delay_s)
            made.posts.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(made.answer(len(made.posts)))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    made.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=made.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.server.shutdown()
        made.server.server_close()


@pytest.fixture
def fleet(database: Database) -> Iterator[Rig]:
    made = Rig(database, ["EU", "EU", "US"], bms=BMS)
    try:
        yield made
    finally:
        made.close()


def _brake(rig: Rig) -> None:
    now = time.time_ns()
    for step in range(40):
        ts = now + step * 100_000_000
        values = {"Vehicle.Speed": 50.0, BRAKE: -6.0 if step == 20 else 0.0}
        for agent in rig.agents.values():
            agent.tick(ts, samples=Samples.from_values(values, ts))
    for agent in rig.agents.values():
        agent.flush(now + 40 * 100_000_000)
    rig.vehicles_act(now + 41 * 100_000_000)


def test_each_committed_batch_is_posted_signed_with_the_mqtt_streams_document(
    fleet: Rig, hook: Hook,
) -> None:
    streamed: list[Message] = []
    fleet.bus.subscribe("dt/campaigns/#", streamed.append)
    fleet.pipeline.stream_to = fleet.bus
    sender = WebhookSender(KEY, allow_private=True)
    fleet.pipeline.webhooks = sender
    try:
        data = definition(destinations=[
            {"type": "mqtt", "topic": "dt/campaigns/harsh-brakes"},
            {"type": "webhook", "url": hook.url}])
        with fleet.database.session() as session:
            create_campaign(session, data, tenant="acme", actor="alice")
        with fleet.database.session() as session:
            approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
        run_round(fleet)
        _brake(fleet)
        fleet.bus.drain(10)
        assert sender.join(10)
    finally:
        sender.close()
    assert streamed, "the MQTT destination got nothing to compare with"
    # The same documents, one per streamed batch (only the campaign's targeted vehicles).
    assert sorted(body for _, body in hook.posts) == sorted(m.payload for m in streamed)
    secret = webhook_secret(KEY, "acme", "harsh-brake")
    for headers, body in hook.posts:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
        assert headers[CAMPAIGN_HEADER] == "harsh-brake"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["campaign"] == "harsh-brake"
    stats = sender.stats()
    assert stats.sent == len(hook.posts) > 0
    assert (stats.failed, stats.refused, stats.dropped) == (0, 0, 0)


def test_the_secret_is_per_tenant_and_campaign_and_a_changed_body_breaks_the_signature() -> None:
    one = webhook_secret(KEY, "acme", "harsh-brake")
    assert one != webhook_secret(KEY, "globex", "harsh-brake")
    assert one != webhook_secret(KEY, "acme", "other")
    assert one != webhook_secret(b"x" * 48, "acme", "harsh-brake")
    assert signature(one, b'{"a":1}') != signature(one, b'{"a":2}')


def _post(sender: WebhookSender, url: str, body: bytes = b"{}") -> bool:
    return sender.submit(WebhookPost("acme", "harsh-brake", url, body))


def test_a_loopback_url_is_refused_unless_the_deployment_allows_it(hook: Hook) -> None:
    sender = WebhookSender(KEY)  # the default: no private addresses
    try:
        assert _post(sender, hook.url)
        assert sender.join(5)
    finally:
        sender.close()
    assert hook.posts == []
    assert sender.stats().refused == 1 and sender.stats().sent == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.7",
                                  "172.16.0.1", "169.254.169.254", "::1", "fe80::1",
                                  "::ffff:10.0.0.1", "0.0.0.0", "100.64.0.1"])
def test_internal_addresses_are_refused(host: str) -> None:
    with pytest.raises(RefusedAddressError, match="private or reserved"):
        vetted_address(host, 443, allow_private=False)
    assert vetted_address(host, 443, allow_private=True)


def test_a_public_address_passes() -> None:
    assert vetted_address("93.184.216.34", 443, allow_private=False) == "93.184.216.34"


def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(RefusedAddressError, match="does not resolve"):
        vetted_address("no-such-host.invalid", 443, allow_private=False)


def test_5xx_is_retried_with_backoff_and_then_delivered(hook: Hook) -> None:
    hook.answer = lambda n: 503 if n <= 2 else 204
    sender = WebhookSender(KEY, allow_private=True, attempts=3, backoff_s=0.05)
    try:
        started = time.monotonic()
        assert _post(sender, hook.url)
        assert sender.join(5)
        took = time.monotonic() - started
    finally:
        sender.close()
    assert len(hook.posts) == 3
    stats = sender.stats()
    assert (stats.sent, stats.retries, stats.failed) == (1, 2, 0)
    assert took >= 0.05 + 0.1  # backoff doubled between tries


def test_attempts_are_bounded_and_a_4xx_is_final(hook: Hook) -> None:
    hook.answer = lambda n: 500
    sender = WebhookSender(KEY, allow_private=True, attempts=2, backoff_s=0.01)
    try:
        assert _post(sender, hook.url)
        assert sender.join(5)
        assert len(hook.posts) == 2 and sender.stats().failed == 1
        hook.answer = lambda n: 400
        assert _post(sender, hook.url)
        assert sender.join(5)
    finally:
        sender.close()
    assert len(hook.posts) == 3  # the 400 was not retried
    assert sender.stats().failed == 2 and sender.stats().sent == 0


def test_a_slow_receiver_times_out(hook: Hook) -> None:
    hook.delay_s = 1.0
    sender = WebhookSender(KEY, allow_private=True, attempts=1, timeout_s=0.2)
    try:
        assert _post(sender, hook.url)
        assert sender.join(5)
    finally:
        sender.close()
    assert sender.stats().failed == 1 and sender.stats().sent == 0


def test_a_full_queue_drops_and_counts_without_blocking(hook: Hook) -> None:
    hook.delay_s = 0.5
    sender = WebhookSender(KEY, allow_private=True, max_queue=2, attempts=1, timeout_s=2)
    try:
        started = time.monotonic()
        results = [_post(sender, hook.url) for _ in range(20)]
        assert time.monotonic() - started < 0.2  # submit never waits on the receiver
        assert not all(results)
        assert sender.stats().dropped == results.count(False) >= 17
    finally:
        sender.close(0.1)


def test_the_workers_status_line_shows_the_webhook_counters() -> None:
    from drivetrain.cloud.ingest.webhooks import WebhookStats
    from drivetrain.cloud.ingest.worker import WorkerStats
    from drivetrain.commands.worker import _status

    quiet = _status(WorkerStats(webhooks=WebhookStats()))
    assert "webhooks" not in quiet
    line = _status(WorkerStats(webhooks=WebhookStats(sent=5, failed=1, refused=2, dropped=3)))
    assert "webhooks 5 sent / 1 failed / 2 refused / 3 dropped" in line
