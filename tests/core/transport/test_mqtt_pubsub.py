"""MqttTransport against the shared Mosquitto: publish/subscribe, filters, shared
subscriptions, retained messages, publish tickets, handler failures."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from mqtt_helpers import Clients, Inbox, settle, wait_until

from drivetrain.core.errors import InvalidTopicError, TransportClosedError
from drivetrain.core.transport import HandlerFailure, Message, PublishTicket, Transport


@pytest.mark.parametrize("qos", [0, 1])
def test_message_round_trips_unchanged_at_each_qos(shared: Clients, prefix: str, qos: int) -> None:
    sub, pub = shared.new(), shared.new()
    inbox = Inbox()
    sub.subscribe(f"{prefix}/data", inbox, qos=qos)  # type: ignore[arg-type]
    payload = bytes(range(256)) * 40  # every byte value, 10 KiB
    pub.publish(f"{prefix}/data", payload, qos=qos)  # type: ignore[arg-type]
    [message] = inbox.wait_for(1)
    assert message.topic == f"{prefix}/data"
    assert message.payload == payload
    assert message.qos == qos
    assert not message.retain and not message.duplicate


def test_qos1_publish_returns_after_the_broker_acknowledged(shared: Clients, prefix: str) -> None:
    pub = shared.new()
    ticket = pub.publish_async(f"{prefix}/x", b"1", qos=1)
    ticket.wait(10)
    assert ticket.done and ticket.acknowledged and ticket.error is None
    pub.publish(f"{prefix}/x", b"2", qos=1)
    assert pub.pending_publishes == 0
    assert pub.stats().published == 2


def test_many_qos1_messages_in_flight_are_each_acknowledged_and_arrive_in_order(
    shared: Clients, prefix: str
) -> None:
    sub, pub = shared.new(), shared.new()
    inbox = Inbox()
    sub.subscribe(f"{prefix}/seq", inbox)
    acknowledged: list[int] = []
    lock = threading.Lock()

    def marker(index: int) -> Callable[[PublishTicket], None]:
        def mark(ticket: PublishTicket) -> None:
            assert ticket.acknowledged
            with lock:
                acknowledged.append(index)

        return mark

    tickets = []
    for i in range(2000):
        ticket = pub.publish_async(f"{prefix}/seq", i.to_bytes(4, "big"))
        ticket.add_done_callback(marker(i))
        tickets.append(ticket)
    for ticket in tickets:
        ticket.wait(30)
    assert sorted(acknowledged) == list(range(2000))
    received = inbox.wait_for(2000, timeout_s=30)
    assert [int.from_bytes(m.payload, "big") for m in received] == list(range(2000))


def test_wildcard_filters_select_the_matching_topics(shared: Clients, prefix: str) -> None:
    sub, pub = shared.new(), shared.new()
    everything, one_level, exact = Inbox(), Inbox(), Inbox()
    sub.subscribe(f"{prefix}/#", everything)
    sub.subscribe(f"{prefix}/+/speed", one_level)
    sub.subscribe(f"{prefix}/car1/speed", exact)
    for topic in ("car1/speed", "car2/speed", "car1/soc", "car1/speed/raw"):
        pub.publish(f"{prefix}/{topic}", topic.encode())
    assert sorted(everything.wait_for(4)[i].payload for i in range(4)) == sorted(
        [b"car1/speed", b"car2/speed", b"car1/soc", b"car1/speed/raw"]
    )
    assert sorted(one_level.wait_for(2)[i].payload for i in range(2)) == [
        b"car1/speed",
        b"car2/speed",
    ]
    assert exact.wait_for(1)[0].payload == b"car1/speed"
    settle()
    assert len(everything.messages) == 4 and len(one_level.messages) == 2
    assert len(exact.messages) == 1


def test_two_subscriptions_on_one_filter_both_receive_each_message(
    shared: Clients, prefix: str
) -> None:
    sub, pub = shared.new(), shared.new()
    first, second = Inbox(), Inbox()
    sub.subscribe(f"{prefix}/t", first)
    sub.subscribe(f"{prefix}/t", second)
    pub.publish(f"{prefix}/t", b"once")
    assert first.wait_for(1)[0].payload == b"once"
    assert second.wait_for(1)[0].payload == b"once"


def test_shared_subscription_gives_each_message_to_exactly_one_member(
    shared: Clients, prefix: str
) -> None:
    worker_a, worker_b, pub = shared.new(), shared.new(), shared.new()
    inbox_a, inbox_b, observer = Inbox(), Inbox(), Inbox()
    group = f"$share/ingest/{prefix}/+/telemetry"
    worker_a.subscribe(group, inbox_a)
    worker_b.subscribe(group, inbox_b)
    worker_a.subscribe(f"{prefix}/#", observer)  # a plain subscription still sees everything
    count = 200
    for i in range(count):
        pub.publish_async(f"{prefix}/car{i % 7}/telemetry", str(i).encode())
    observer.wait_for(count, timeout_s=20)
    wait_until(lambda: len(inbox_a.messages) + len(inbox_b.messages) >= count, what="all shares")
    settle()
    seen = Counter(inbox_a.payloads + inbox_b.payloads)
    assert set(seen) == {str(i).encode() for i in range(count)}
    assert max(seen.values()) == 1, "a message reached more than one member of the group"
    assert inbox_a.messages and inbox_b.messages, "the group did not split the stream"


def test_shared_subscription_members_in_one_client_take_turns(shared: Clients, prefix: str) -> None:
    worker, pub = shared.new(), shared.new()
    first, second = Inbox(), Inbox()
    worker.subscribe(f"$share/g/{prefix}/x", first)
    worker.subscribe(f"$share/g/{prefix}/x", second)
    for i in range(10):
        pub.publish(f"{prefix}/x", bytes([i]))
    wait_until(lambda: len(first.messages) + len(second.messages) == 10, what="10 messages")
    settle()
    assert len(first.messages) == 5 and len(second.messages) == 5


def test_retained_message_reaches_a_later_subscriber_flagged_retained(
    shared: Clients, prefix: str
) -> None:
    pub = shared.new()
    topic = f"{prefix}/state/reported"
    pub.publish(topic, b"v1", retain=True)
    pub.publish(topic, b"v2", retain=True)  # replaces v1
    try:
        late = Inbox()
        shared.new().subscribe(f"{prefix}/state/#", late)
        [message] = late.wait_for(1)
        assert (message.payload, message.retain) == (b"v2", True)
        live = Inbox()
        watcher = shared.new()
        watcher.subscribe(topic, live)
        live.wait_for(1)
        pub.publish(topic, b"v3")  # not retained: a live message has retain=False
        assert live.wait_for(2)[1].retain is False
    finally:
        pub.publish(topic, b"", retain=True)  # an empty retained payload clears it
    cleared = Inbox()
    shared.new().subscribe(topic, cleared)
    settle()
    assert cleared.messages == []


def test_shared_subscription_receives_no_retained_messages(shared: Clients, prefix: str) -> None:
    pub = shared.new()
    pub.publish(f"{prefix}/r", b"kept", retain=True)
    try:
        inbox = Inbox()
        shared.new().subscribe(f"$share/g/{prefix}/r", inbox)
        settle()
        assert inbox.messages == []  # MQTT 5 §4.8.2
    finally:
        pub.publish(f"{prefix}/r", b"", retain=True)


def test_unsubscribe_stops_deliveries(shared: Clients, prefix: str) -> None:
    sub, pub = shared.new(), shared.new()
    inbox = Inbox()
    subscription = sub.subscribe(f"{prefix}/u", inbox)
    pub.publish(f"{prefix}/u", b"1")
    inbox.wait_for(1)
    subscription.unsubscribe()
    assert not subscription.active
    pub.publish(f"{prefix}/u", b"2")
    settle()
    assert inbox.payloads == [b"1"]


def test_handler_that_raises_gets_the_message_again_and_is_reported(
    shared: Clients, prefix: str
) -> None:
    failures: list[HandlerFailure] = []
    sub = shared.new(on_handler_error=failures.append, max_attempts=3)
    pub = shared.new()
    attempts: list[int] = []

    def flaky(message: Message) -> None:
        attempts.append(message.attempt)
        if len(attempts) < 3:
            raise RuntimeError("disk busy")

    sub.subscribe(f"{prefix}/f", flaky)
    pub.publish(f"{prefix}/f", b"x")
    wait_until(lambda: len(attempts) == 3, what="three attempts")
    assert attempts == [1, 2, 3]
    assert [f.gave_up for f in failures] == [False, False]
    stats = sub.stats()
    assert (stats.delivered, stats.handler_errors, stats.redelivered) == (1, 2, 2)


def test_handler_may_publish_and_wait_for_the_acknowledgement(shared: Clients, prefix: str) -> None:
    relay, pub = shared.new(), shared.new()
    out = Inbox()
    shared.new().subscribe(f"{prefix}/out", out)

    def forward(message: Message) -> None:
        relay.publish(f"{prefix}/out", message.payload.upper(), qos=1)  # blocks for PUBACK

    relay.subscribe(f"{prefix}/in", forward)
    pub.publish(f"{prefix}/in", b"ping")
    assert out.wait_for(1)[0].payload == b"PING"


def test_invalid_topics_are_refused_before_anything_is_sent(shared: Clients, prefix: str) -> None:
    transport = shared.new()
    with pytest.raises(InvalidTopicError, match="wildcard"):
        transport.publish(f"{prefix}/+/x", b"")
    with pytest.raises(InvalidTopicError):
        transport.subscribe(f"{prefix}/#/x", Inbox())
    with pytest.raises(TypeError, match="payload must be bytes"):
        transport.publish(f"{prefix}/x", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="qos must be 0"):
        transport.publish(f"{prefix}/x", b"", qos=2)  # type: ignore[arg-type]
    assert transport.stats().published == 0


def test_closed_transport_refuses_publish_and_subscribe(shared: Clients, prefix: str) -> None:
    transport: Transport = shared.new()
    transport.close()
    transport.close()  # idempotent
    with pytest.raises(TransportClosedError):
        transport.publish(f"{prefix}/x", b"")
    with pytest.raises(TransportClosedError):
        transport.subscribe(f"{prefix}/x", Inbox())


def test_close_lets_messages_in_flight_be_acknowledged_first(shared: Clients, prefix: str) -> None:
    sub, pub = shared.new(), shared.new()
    inbox = Inbox()
    sub.subscribe(f"{prefix}/last", inbox)
    tickets = [pub.publish_async(f"{prefix}/last", str(i).encode()) for i in range(300)]
    pub.close()
    assert all(t.acknowledged for t in tickets)
    assert len(inbox.wait_for(300)) == 300
