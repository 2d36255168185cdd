"""The transport: MQTT topic rules, the dt/v1 scheme, and the in-process bus's delivery semantics."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.core.errors import (
    BackpressureTimeoutError,
    BadInputError,
    InvalidTopicError,
    TransportClosedError,
)
from drivetrain.core.transport import (
    TELEMETRY,
    HandlerFailure,
    InProcessTransport,
    Message,
    parse_vehicle_topic,
    shared_filter,
    split_shared_filter,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
    vehicle_filter,
    vehicle_topic,
)

VIN = "1DTBEV2A0PX000001"
OTHER_VIN = "1DTBEV2A0PX000002"


@pytest.fixture
def transport() -> Iterator[InProcessTransport]:
    bus = InProcessTransport(publish_timeout_s=5.0)
    yield bus
    bus.close()


# --- topic rules -------------------------------------------------------------------------------

MATCH_TABLE = [
    # (filter, topic, matches) — the examples of MQTT 5 §4.7 plus the dt/v1 scheme
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("#", "$SYS/uptime", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/uptime", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("dt/v1/+/telemetry", f"dt/v1/{VIN}/telemetry", True),
    ("dt/v1/+/telemetry", f"dt/v1/{VIN}/events", False),
    ("dt/v1/+/state/#", f"dt/v1/{VIN}/state/reported", True),
    ("dt/v1/Dt/#", "dt/v1/dt/x", False),  # levels are case-sensitive
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH_TABLE)
def test_filter_matching_follows_the_mqtt_table(
    topic_filter: str, topic: str, expected: bool
) -> None:
    assert (
        topic_matches(validate_topic_filter(topic_filter), validate_topic_name(topic)) is expected
    )


def _reference_match(topic_filter: str, topic: str) -> bool:
    """An independent oracle: the filter translated to a regular expression."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic_filter.split("/")
    if levels[-1] == "#":
        head = levels[:-1]
        pattern = "/".join("[^/]*" if lv == "+" else re.escape(lv) for lv in head)
        regex = "(?:/.*)?" if not head else pattern + "(?:/.*)?"
        return re.fullmatch(regex if head else ".*", topic) is not None
    pattern = "/".join("[^/]*" if lv == "+" else re.escape(lv) for lv in levels)
    return re.fullmatch(pattern, topic) is not None


_level = st.sampled_from(["a", "b", "dt", "v1", "", "$SYS", "telemetry", "x y"])


@st.composite
def _topic_and_filter(draw: st.DrawFn) -> tuple[str, str]:
    topic_levels = draw(st.lists(_level, min_size=1, max_size=5))
    filter_levels = []
    for level in draw(st.lists(_level, min_size=0, max_size=5)) or topic_levels:
        filter_levels.append(draw(st.sampled_from([level, "+"])))
    if draw(st.booleans()):  # mostly related topics, so matches are common
        filter_levels = [draw(st.sampled_from([lv, "+"])) for lv in topic_levels]
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(filter_levels)))
        filter_levels = filter_levels[:cut] + ["#"]
    topic = "/".join(topic_levels) or "a"
    return "/".join(filter_levels) or "+", topic


@settings(max_examples=400, deadline=None)
@given(_topic_and_filter())
@example(("#", "$SYS"))
@example(("a/#", "a"))
@example(("+/+", "/"))
def test_filter_matching_agrees_with_a_regex_oracle(case: tuple[str, str]) -> None:
    topic_filter, topic = case
    validate_topic_filter(topic_filter)
    validate_topic_name(topic)
    assert topic_matches(topic_filter, topic) == _reference_match(topic_filter, topic)


@pytest.mark.parametrize(
    "bad_filter",
    ["", "a/#/b", "a/b#", "a+/b", "$share/", "$share/g", "$share//a", "$share/g+/a", "a\x00b"],
)
def test_malformed_filter_is_rejected_naming_it(bad_filter: str) -> None:
    with pytest.raises(InvalidTopicError) as err:
        validate_topic_filter(bad_filter)
    assert isinstance(err.value, BadInputError)
    assert repr(bad_filter)[1:-1][:8] in str(err.value)


@pytest.mark.parametrize("bad_topic", ["", "a/+/b", "a/#", "x" * 70_000])
def test_topic_name_with_wildcard_or_bad_length_is_rejected(bad_topic: str) -> None:
    with pytest.raises(InvalidTopicError):
        validate_topic_name(bad_topic)


def test_shared_filter_splits_into_group_and_filter() -> None:
    assert split_shared_filter("$share/ingest/dt/v1/+/telemetry") == ("ingest", "dt/v1/+/telemetry")
    assert split_shared_filter("dt/v1/#") == (None, "dt/v1/#")
    assert shared_filter("ingest", vehicle_filter(TELEMETRY)) == "$share/ingest/dt/v1/+/telemetry"


# --- the dt/v1 scheme --------------------------------------------------------------------------


def test_vehicle_topic_round_trips_through_the_parser() -> None:
    topic = vehicle_topic(VIN, "state", "reported")
    assert topic == f"dt/v1/{VIN}/state/reported"
    parsed = parse_vehicle_topic(topic)
    assert (parsed.vin, parsed.channel) == (VIN, "state/reported")
    assert vehicle_filter(TELEMETRY) == "dt/v1/+/telemetry"
    assert vehicle_filter("#", vin=VIN) == f"dt/v1/{VIN}/#"


@pytest.mark.parametrize(
    "bad_vin", ["1DTBEV2A0PX00000", "1DTBEV2A0PX0000O1", "1dtbev2a0px000001", "A/B"]
)
def test_invalid_vin_is_rejected_naming_it(bad_vin: str) -> None:
    with pytest.raises(InvalidTopicError, match=re.escape(repr(bad_vin))):
        vehicle_topic(bad_vin, TELEMETRY)


@pytest.mark.parametrize("bad_level", ["Telemetry", "tele metry", "+", "", "a#"])
def test_invalid_channel_level_is_rejected_naming_it(bad_level: str) -> None:
    with pytest.raises(InvalidTopicError, match="level"):
        vehicle_topic(VIN, bad_level)


def test_topic_outside_the_scheme_is_rejected_by_the_parser() -> None:
    with pytest.raises(InvalidTopicError, match="'dt/v2/x/telemetry'"):
        parse_vehicle_topic("dt/v2/x/telemetry")
    with pytest.raises(InvalidTopicError, match="no channel"):
        parse_vehicle_topic(f"dt/v1/{VIN}")


# --- delivery ------------------------------------------------------------------------------------


def test_wildcard_subscribers_receive_matching_messages_only(transport: InProcessTransport) -> None:
    everything: list[str] = []
    one_vehicle: list[str] = []
    transport.subscribe(vehicle_filter("#"), lambda m: everything.append(m.topic))
    transport.subscribe(vehicle_filter("#", vin=VIN), lambda m: one_vehicle.append(m.topic))
    transport.publish(vehicle_topic(VIN, TELEMETRY), b"1")
    transport.publish(vehicle_topic(OTHER_VIN, TELEMETRY), b"2")
    transport.publish("other/topic", b"3")
    transport.drain(timeout_s=5)
    assert everything == [vehicle_topic(VIN, TELEMETRY), vehicle_topic(OTHER_VIN, TELEMETRY)]
    assert one_vehicle == [vehicle_topic(VIN, TELEMETRY)]
    assert transport.stats().no_subscriber == 1


def test_shared_subscription_delivers_each_message_to_one_member_round_robin(
    transport: InProcessTransport,
) -> None:
    received: dict[str, list[bytes]] = {"w1": [], "w2": [], "w3": []}
    observer: list[bytes] = []
    group = shared_filter("ingest", vehicle_filter(TELEMETRY))

    def collector(inbox: list[bytes]) -> Callable[[Message], None]:
        return lambda m: inbox.append(m.payload)

    for inbox in received.values():
        transport.subscribe(group, collector(inbox))
    transport.subscribe(vehicle_filter(TELEMETRY), lambda m: observer.append(m.payload))
    payloads = [str(i).encode() for i in range(30)]
    for payload in payloads:
        transport.publish(vehicle_topic(VIN, TELEMETRY), payload)
    transport.drain(timeout_s=5)
    assert [len(inbox) for inbox in received.values()] == [10, 10, 10]
    assert sorted(p for inbox in received.values() for p in inbox) == sorted(payloads)
    assert observer == payloads  # a plain subscriber still sees every message


def test_retained_message_reaches_late_subscriber_and_empty_payload_clears_it(
    transport: InProcessTransport,
) -> None:
    topic = vehicle_topic(VIN, "state", "desired")
    transport.publish(topic, b"v1", retain=True)
    transport.publish(topic, b"v2", retain=True)
    late: list[Message] = []
    transport.subscribe(vehicle_filter("state", "+"), late.append)
    transport.drain(timeout_s=5)
    assert [(m.payload, m.retain) for m in late] == [(b"v2", True)]

    shared: list[Message] = []
    transport.subscribe(shared_filter("g", vehicle_filter("#")), shared.append)
    transport.publish(topic, b"", retain=True)
    later: list[Message] = []
    transport.subscribe(vehicle_filter("#"), later.append)
    transport.drain(timeout_s=5)
    assert later == []  # cleared
    assert [m.payload for m in shared] == [b""]  # shared subscriptions get live messages only
    assert transport.stats().retained == 0


def test_handler_error_is_isolated_counted_and_retried_at_qos1() -> None:
    failures: list[HandlerFailure] = []
    bus = InProcessTransport(max_attempts=3, on_handler_error=failures.append)
    attempts: list[int] = []
    healthy: list[bytes] = []

    def flaky(message: Message) -> None:
        attempts.append(message.attempt)
        if message.attempt < 2:
            raise RuntimeError("disk full")

    def broken(message: Message) -> None:
        raise ValueError(f"cannot parse {message.payload!r}")

    try:
        bus.subscribe("t/#", flaky)
        bus.subscribe("t/#", broken)
        bus.subscribe("t/#", lambda m: healthy.append(m.payload))
        bus.publish("t/1", b"a", qos=1)
        bus.publish("t/2", b"b", qos=0)
        bus.drain(timeout_s=5)
    finally:
        bus.close()
    assert healthy == [b"a", b"b"]
    assert attempts == [1, 2, 1]  # QoS 1 retried once and succeeded; QoS 0 tried once
    stats = bus.stats()
    assert stats.handler_errors == 6  # flaky x2, broken x3 (QoS 1) + x1 (QoS 0)
    assert stats.undelivered == 3  # broken gave up on both messages, flaky gave up on QoS 0
    assert [
        f.gave_up for f in failures if f.topic_filter == "t/#" and f.message.topic == "t/1"
    ] == [
        False,
        False,
        False,
        True,
    ]
    assert all(str(f.error) for f in failures)


def test_shared_group_retries_on_the_next_member_when_a_handler_raises(
    transport: InProcessTransport,
) -> None:
    good: list[Message] = []

    def bad(message: Message) -> None:
        raise RuntimeError("worker crashed")

    transport.subscribe("$share/w/t", bad)
    transport.subscribe("$share/w/t", good.append)
    transport.publish("t", b"x")
    transport.drain(timeout_s=5)
    assert [(m.payload, m.attempt, m.duplicate) for m in good] == [(b"x", 2, True)]


def test_many_publisher_threads_deliver_every_message_exactly_once_per_subscriber() -> None:
    bus = InProcessTransport(max_queue=64, publish_timeout_s=10.0)
    counts = [Counter[bytes](), Counter[bytes](), Counter[bytes]()]
    lock = threading.Lock()

    def collect(index: int) -> None:
        def handler(message: Message) -> None:
            with lock:
                counts[index][message.payload] += 1

        bus.subscribe("dt/v1/+/telemetry", handler)

    for i in range(3):
        collect(i)
    publishers, per_publisher = 8, 500

    def publish(n: int) -> None:
        vin = f"1DTBEV2A0PX{n:06d}"
        for i in range(per_publisher):
            bus.publish(vehicle_topic(vin, TELEMETRY), f"{n}:{i}".encode())

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(publishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bus.drain(timeout_s=10)
    bus.close()
    expected = {f"{n}:{i}".encode() for n in range(publishers) for i in range(per_publisher)}
    for counter in counts:
        assert set(counter) == expected
        assert set(counter.values()) == {1}
    assert bus.stats().delivered == 3 * publishers * per_publisher


def test_per_publisher_order_is_preserved(transport: InProcessTransport) -> None:
    seen: list[int] = []
    transport.subscribe("o", lambda m: seen.append(int(m.payload)))
    for i in range(200):
        transport.publish("o", str(i).encode())
    transport.drain(timeout_s=5)
    assert seen == list(range(200))


def test_full_queue_blocks_the_publisher_then_raises_instead_of_dropping() -> None:
    release = threading.Event()
    bus = InProcessTransport(max_queue=2, publish_timeout_s=0.2)
    delivered: list[bytes] = []

    def slow(message: Message) -> None:
        release.wait(5)
        delivered.append(message.payload)

    bus.subscribe("q", slow)
    try:
        bus.publish("q", b"1")  # taken by the dispatcher, which blocks in the handler
        bus.publish("q", b"2")
        bus.publish("q", b"3")  # queue now holds 2
        with pytest.raises(BackpressureTimeoutError, match="'q'"):
            bus.publish("q", b"4")
        assert bus.stats().published == 3
    finally:
        release.set()
        bus.close()
    assert delivered == [b"1", b"2", b"3"]


def test_handler_may_publish_without_deadlocking_a_full_queue() -> None:
    bus = InProcessTransport(max_queue=1, publish_timeout_s=5.0)
    echoes: list[bytes] = []

    def echo_three_times(message: Message) -> None:
        for _ in range(3):
            bus.publish("out", message.payload)

    bus.subscribe("in", echo_three_times)
    bus.subscribe("out", lambda m: echoes.append(m.payload))
    for i in range(5):
        bus.publish("in", bytes([i]))
    bus.drain(timeout_s=5)
    bus.close()
    assert sorted(echoes) == sorted(bytes([i]) for i in range(5) for _ in range(3))


def test_unsubscribed_handler_receives_nothing_more(transport: InProcessTransport) -> None:
    got: list[bytes] = []
    sub = transport.subscribe("u", lambda m: got.append(m.payload))
    transport.publish("u", b"1")
    transport.drain(timeout_s=5)
    sub.unsubscribe()
    sub.unsubscribe()
    transport.publish("u", b"2")
    transport.drain(timeout_s=5)
    assert got == [b"1"] and not sub.active


def test_close_delivers_queued_messages_stops_the_thread_and_refuses_more() -> None:
    before = {t.ident for t in threading.enumerate()}
    bus = InProcessTransport()
    got: list[bytes] = []
    bus.subscribe("c", lambda m: got.append(m.payload))
    for i in range(100):
        bus.publish("c", bytes([i]))
    bus.close()
    bus.close()
    assert len(got) == 100
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before
    with pytest.raises(TransportClosedError, match="'c'"):
        bus.publish("c", b"late")
    with pytest.raises(TransportClosedError):
        bus.subscribe("c", lambda m: got.append(m.payload))


def test_publish_rejects_bad_arguments(transport: InProcessTransport) -> None:
    with pytest.raises(InvalidTopicError, match=re.escape("'dt/v1/+/telemetry'")):
        transport.publish("dt/v1/+/telemetry", b"x")
    with pytest.raises(ValueError, match="qos"):
        transport.publish("t", b"x", qos=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        transport.publish("t", "text")  # type: ignore[arg-type]


def test_exact_and_wildcard_subscribers_are_called_in_subscription_order(
    transport: InProcessTransport,
) -> None:
    calls: list[str] = []
    topic = vehicle_topic(VIN, TELEMETRY)
    transport.subscribe(vehicle_filter(TELEMETRY), lambda m: calls.append("wildcard-1"))
    transport.subscribe(topic, lambda m: calls.append("exact-1"))
    transport.subscribe("dt/#", lambda m: calls.append("wildcard-2"))
    transport.subscribe(topic, lambda m: calls.append("exact-2"))
    transport.publish(topic, b"x")
    transport.drain(timeout_s=5)
    assert calls == ["wildcard-1", "exact-1", "wildcard-2", "exact-2"]


def test_thousands_of_vehicle_subscriptions_each_receive_only_their_own_topic(
    transport: InProcessTransport,
) -> None:
    vins = [f"1DTBEV2A0PX{i:06d}" for i in range(3000)]
    received: Counter[str] = Counter()
    subscriptions = [
        transport.subscribe(vehicle_topic(v, "state", "desired"), lambda m: received.update([m.topic]))
        for v in vins
    ]
    for v in vins[::7]:
        transport.publish(vehicle_topic(v, "state", "desired"), b"delta")
    transport.drain(timeout_s=10)
    assert received == Counter(vehicle_topic(v, "state", "desired") for v in vins[::7])
    for subscription in subscriptions[::7]:
        subscription.unsubscribe()
    transport.publish(vehicle_topic(vins[0], "state", "desired"), b"again")
    transport.publish(vehicle_topic(vins[1], "state", "desired"), b"again")
    transport.drain(timeout_s=10)
    assert received[vehicle_topic(vins[0], "state", "desired")] == 1
    assert received[vehicle_topic(vins[1], "state", "desired")] == 1
    assert transport.stats().no_subscriber == 1
