"""Broker URLs, client options, the routing table and acknowledgement bookkeeping of the MQTT
transport, and the open_transport factory — the parts that need no broker."""

from __future__ import annotations

import logging
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from drivetrain.core.errors import ConfigurationError, TransportClosedError, TransportError
from drivetrain.core.transport import (
    BusClient,
    InProcessTransport,
    Message,
    MqttTransport,
    PublishTicket,
    Subscription,
    open_transport,
    parse_broker_url,
)
from drivetrain.core.transport.mqtt_link import BrokerLink
from drivetrain.core.transport.mqtt_options import (
    ClientOptions,
    TlsFiles,
    describe_error,
    describe_reason,
    new_client,
)
from drivetrain.core.transport.mqtt_routing import (
    AckWaiters,
    Inbound,
    RoutingTable,
    subscription_id_for,
)
from drivetrain.core.transport.testing import unique_name
from drivetrain.core.transport.topics import split_shared_filter

# --- broker URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "tls"),
    [
        ("mqtt://127.0.0.1:1883", "mqtt", "127.0.0.1", 1883, False),
        ("mqtt://broker.example", "mqtt", "broker.example", 1883, False),
        ("mqtts://broker.example", "mqtts", "broker.example", 8883, True),
        ("MQTTS://Broker.Example:9000/", "mqtts", "broker.example", 9000, True),
        ("mqtt://[::1]:1884", "mqtt", "::1", 1884, False),
    ],
)
def test_broker_url_gives_scheme_host_and_default_port(
    url: str, scheme: str, host: str, port: int, tls: bool
) -> None:
    address = parse_broker_url(url)
    assert (address.scheme, address.host, address.port, address.tls) == (scheme, host, port, tls)


def test_credentials_in_a_broker_url_are_decoded_and_the_password_never_shown() -> None:
    address = parse_broker_url("mqtts://vehicle%2F1:p%40ss%3Aword@broker.example")
    assert (address.username, address.password) == ("vehicle/1", "p@ss:word")
    assert "p@ss" not in repr(address) and "p@ss" not in address.display
    assert address.display == "mqtts://vehicle/1@broker.example:8883"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://broker:1883", "expected the scheme mqtt:// or mqtts://, got http://"),
        ("broker:1883", "expected the scheme mqtt:// or mqtts://"),
        ("mqtt://", "expected a host name"),
        ("mqtt://broker:notaport", "port must be a number"),
        ("mqtt://broker:70000", "port must be a number"),
        ("mqtt://broker:0", "port must be from 1 to 65535"),
        ("mqtt://broker/topic", "without a path"),
        ("mqtt://broker?x=1", "without a path, query or fragment"),
    ],
)
def test_malformed_broker_url_is_refused_naming_what_was_expected(url: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        parse_broker_url(url)


def test_a_refused_url_is_quoted_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_broker_url("mqtt://user:hunter2@broker/path")
    assert "hunter2" not in str(refused.value) and "user:***@broker" in str(refused.value)


@given(st.text(max_size=60))
def test_any_text_as_a_broker_url_parses_or_raises_a_configuration_error(text: str) -> None:
    try:
        address = parse_broker_url(text)
    except ConfigurationError:
        return
    assert address.scheme in ("mqtt", "mqtts") and 1 <= address.port <= 65535 and address.host


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("client_id", "", "client_id must be a non-empty str"),
        ("client_id", "a\x00b", "without NUL"),
        ("session_expiry_s", -1, "session_expiry_s must be an int from 0 to 4294967295"),
        ("keepalive_s", 70000, "keepalive_s must be an int from 0 to 65535"),
        ("receive_maximum", 0, "receive_maximum must be an int from 1 to 65535"),
        ("max_inflight", 0, "max_inflight must be an int from 1 to 65535"),
        ("max_attempts", 0, "max_attempts must be >= 1"),
        ("ack_timeout_s", 0, "ack_timeout_s must be > 0"),
        ("reconnect_max_delay_s", 0.1, "reconnect_max_delay_s .* must be >= reconnect_min"),
    ],
)
def test_client_option_out_of_range_is_a_value_error_naming_it(
    field: str, value: object, expected: str
) -> None:
    values: dict[str, object] = {"client_id": "vehicle-1", field: value}
    with pytest.raises(ValueError, match=expected):
        ClientOptions(**values)  # type: ignore[arg-type]


# --- routing ---------------------------------------------------------------------------------


def _subscription(topic_filter: str, qos: int = 1) -> Subscription:
    group, plain = split_shared_filter(topic_filter)
    return Subscription(topic_filter, lambda m: None, qos, group, plain, lambda s: None)  # type: ignore[arg-type]


def _inbound(topic: str, *ids: int, retain: bool = False) -> Inbound:
    return Inbound(topic, b"", 1, retain, False, mid=1, epoch=1, subscription_ids=ids)


def test_subscription_id_of_a_filter_is_the_same_in_every_process() -> None:
    assert subscription_id_for("dt/v1/+/telemetry") == subscription_id_for("dt/v1/+/telemetry")
    assert 1 <= subscription_id_for("#") <= 268_435_455
    assert subscription_id_for("a/b") != subscription_id_for("a/c")


def test_a_message_goes_to_the_subscriptions_of_the_identifiers_it_carries() -> None:
    table = RoutingTable()
    wide, narrow = _subscription("a/#"), _subscription("a/+/x")
    wide_id = table.add(wide).subscription_id
    narrow_id = table.add(narrow).subscription_id
    assert table.route(_inbound("a/b/x", wide_id)) == ([wide], False)
    assert table.route(_inbound("a/b/x", narrow_id)) == ([narrow], False)
    assert table.route(_inbound("a/b/x", wide_id, narrow_id)) == ([wide, narrow], False)
    assert table.route(_inbound("a/b/x")) == ([wide, narrow], False)  # no ids: by topic


def test_members_of_a_shared_filter_take_turns_and_get_no_retained_messages() -> None:
    table = RoutingTable()
    first, second = _subscription("$share/g/a/#"), _subscription("$share/g/a/#")
    sid = table.add(first).subscription_id
    table.add(second)
    turns = [table.route(_inbound("a/b", sid))[0] for _ in range(4)]
    assert turns == [[first], [second], [first], [second]]
    assert table.route(_inbound("a/b", sid, retain=True)) == ([], True)  # MQTT 5 §4.8.2


def test_messages_for_a_filter_not_yet_subscribed_wait_and_are_claimed_in_order() -> None:
    table = RoutingTable()
    sid = subscription_id_for("a/#")
    early = [_inbound("a/1", sid), _inbound("b/1", 999), _inbound("a/2", sid)]
    for inbound in early:
        assert table.route(inbound) == ([], False)
        assert table.hold(inbound)
    entry = table.add(_subscription("a/#"))
    assert entry.subscription_id == sid
    assert [m.topic for m in table.claim(entry)] == ["a/1", "a/2"]
    assert table.held == 1


def test_held_messages_are_bounded() -> None:
    table = RoutingTable(max_held=2)
    assert table.hold(_inbound("a", 5)) and table.hold(_inbound("a", 5))
    assert not table.hold(_inbound("a", 5))


def test_copies_for_an_unsubscribed_filter_are_unwanted() -> None:
    table = RoutingTable()
    subscription = _subscription("a/#")
    sid = table.add(subscription).subscription_id
    removed = table.remove(subscription)
    assert removed is not None and removed.topic_filter == "a/#"
    assert table.route(_inbound("a/b", sid)) == ([], True)
    table.add(_subscription("a/#"))  # subscribed again: wanted again
    assert table.route(_inbound("a/b", sid))[0]


def test_the_broker_is_asked_again_for_a_higher_qos_or_after_a_lost_session() -> None:
    table = RoutingTable()
    entry = table.add(_subscription("a", qos=0))
    entry.confirmed = True
    table.add(_subscription("a", qos=0))
    assert table.unconfirmed() == []
    table.add(_subscription("a", qos=1))
    assert table.unconfirmed() == [entry] and entry.qos == 1
    entry.confirmed = True
    table.session_lost()
    assert table.unconfirmed() == [entry]


def test_an_acknowledgement_that_arrives_before_its_waiter_is_not_lost() -> None:
    waiters: AckWaiters[str, int] = AckWaiters()
    assert waiters.resolve(7, 0x10) is None  # PUBACK first
    assert waiters.register(7, "ticket") == 0x10  # then the publisher: gets it at once
    assert waiters.register(8, "later") is None
    assert waiters.resolve(8, 0) == "later"
    waiters.register(9, "a")
    waiters.register(10, "b")
    assert waiters.take(lambda w: w == "b") == ["b"]
    assert waiters.take() == ["a"] and waiters.waiting == {}


# --- publish tickets ---------------------------------------------------------------------------


def test_ticket_wait_returns_once_acknowledged_and_runs_callbacks_once() -> None:
    ticket = PublishTicket("a/b", 1)
    seen: list[PublishTicket] = []
    ticket.add_done_callback(seen.append)
    with pytest.raises(TransportError, match=r"did not acknowledge .*'a/b' within 0.01 s"):
        ticket.wait(0.01)
    threading.Timer(0.05, ticket.complete).start()
    ticket.wait(5)
    assert ticket.acknowledged and seen == [ticket]
    assert not ticket.complete(TransportError("late"))  # completes once
    ticket.add_done_callback(seen.append)  # already done: called at once
    assert seen == [ticket, ticket] and ticket.error is None


def test_failed_ticket_raises_its_error_and_a_raising_callback_is_contained() -> None:
    ticket = PublishTicket("a/b", 1)

    def broken(_: PublishTicket) -> None:
        raise RuntimeError("callback bug")

    ticket.add_done_callback(broken)
    ticket.complete(TransportClosedError("closed before acknowledged"))
    assert ticket.done and not ticket.acknowledged
    with pytest.raises(TransportClosedError, match="closed before acknowledged"):
        ticket.wait(0)


# --- the factory -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [None, "inprocess://"])
def test_no_broker_url_gives_the_in_process_bus(url: str | None) -> None:
    transport = open_transport(url, client_id="vehicle-1")
    try:
        assert isinstance(transport, InProcessTransport)
        got: list[Message] = []
        transport.subscribe("a/#", got.append)
        ticket = transport.publish_async("a/b", b"x")
        assert ticket.acknowledged
        transport.drain(5)
        assert [m.payload for m in got] == [b"x"]
    finally:
        transport.close()


def test_clients_of_one_bus_talk_and_closing_one_leaves_the_bus_running() -> None:
    with InProcessTransport() as bus:
        vehicle = open_transport(None, client_id="vehicle-1", bus=bus)
        cloud = open_transport("inprocess://", client_id="ingest-1", bus=bus)
        assert isinstance(vehicle, BusClient) and isinstance(cloud, BusClient)
        got: list[bytes] = []
        cloud.subscribe("dt/v1/+/telemetry", lambda m: got.append(m.payload), manual_ack=True)
        vehicle.publish("dt/v1/1DTBEV2A0PX000001/telemetry", b"batch")
        bus.drain(5)
        assert got == [b"batch"]
        cloud.close()
        assert cloud.closed and not bus.closed
        with pytest.raises(TransportClosedError, match="client 'ingest-1' is closed"):
            cloud.publish("a", b"")
        vehicle.publish("dt/v1/1DTBEV2A0PX000001/telemetry", b"after")
        bus.drain(5)
        assert got == [b"batch"]  # the closed client's subscription ended with it
        vehicle.close()


@pytest.mark.parametrize("url", ["http://broker", "amqp://broker:5672", "broker:1883"])
def test_a_url_of_another_kind_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"expected None or 'inprocess://'"):
        open_transport(url, client_id="c")


def test_the_factory_connects_to_a_broker_url(mqtt_url: str) -> None:
    with open_transport(mqtt_url, client_id=unique_name("factory")) as transport:
        assert isinstance(transport, MqttTransport) and transport.connected
        transport.publish(f"test/{unique_name('factory')}", b"x")


@pytest.mark.parametrize("code", list(MQTTErrorCode))
def test_every_paho_error_code_has_words_and_its_name(code: MQTTErrorCode) -> None:
    text = describe_error(code)
    assert code.name in text and len(text) > len(code.name) + 5


def test_a_reason_code_reads_as_its_name_and_number() -> None:
    assert describe_reason(ReasonCode(PacketTypes.PUBACK, identifier=0x87)) == (
        "Not authorized (0x87)"
    )
    assert describe_reason(ReasonCode(PacketTypes.CONNACK, identifier=0x86)) == (
        "Bad user name or password (0x86)"
    )


# --- paho's log ----------------------------------------------------------------------------


def test_paho_log_passes_errors_and_warnings_and_never_formats_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = parse_broker_url("mqtt://127.0.0.1:1")
    options = ClientOptions("log-test")
    link = BrokerLink(address, options, new_client(address, options, None, None, TlsFiles()))
    paho_log = link.paho_logger()

    class Unprintable:
        def __str__(self) -> str:
            raise AssertionError("a debug line's arguments were formatted")

    with caplog.at_level("DEBUG", logger="drivetrain.transport"):
        paho_log.log(logging.DEBUG, "Received PUBLISH %s", Unprintable())
        paho_log.log(logging.ERROR, "Caught exception in on_message: %s", "boom")
        paho_log.log(logging.WARNING, "Client is not connected")
        link.closing = True  # after our own DISCONNECT paho's complaint is expected
        paho_log.log(logging.WARNING, "Client is not connected")
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (logging.ERROR, "paho (log-test): Caught exception in on_message: boom"),
        (logging.WARNING, "paho (log-test): Client is not connected"),
    ]
