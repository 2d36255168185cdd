"""MqttTransport when the broker is away, hangs, restarts or refuses: each test runs its own
private Mosquitto, so stopping or killing it disturbs nobody else."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from mqtt_helpers import Clients, Inbox, authenticated_broker, settle, wait_until

from drivetrain.core.errors import TransportClosedError, TransportError
from drivetrain.core.transport import MqttTransport
from drivetrain.core.transport.testing import PrivateBroker, unique_name


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_broker_raises_a_transport_error_naming_the_url() -> None:
    url = f"mqtt://127.0.0.1:{_closed_port()}"
    with pytest.raises(TransportError, match=rf"{url}.*Connection refused"):
        MqttTransport(url, client_id=unique_name("c"), connect_timeout_s=2)


def test_unreachable_broker_without_waiting_connects_once_it_is_up(tmp_path: Path) -> None:
    broker = PrivateBroker(tmp_path / "late")
    transport = MqttTransport(
        broker.url, client_id=unique_name("c"), wait_for_connection=False,
        reconnect_min_delay_s=0.1, reconnect_max_delay_s=0.2,
    )  # fmt: skip
    try:
        assert not transport.connected
        with pytest.raises(TransportError, match="not connected"):
            transport.publish("a/b", b"x")
        broker.start()
        assert transport.wait_connected(10)
        transport.publish("a/b", b"x")
    finally:
        transport.close()
        broker.kill()


def test_publish_blocks_until_the_puback_and_times_out_when_the_broker_hangs(
    private: Clients, private_broker: PrivateBroker
) -> None:
    pub = private.new(ack_timeout_s=1.0)
    private_broker.pause()  # connection open, nothing answered
    started = time.monotonic()
    with pytest.raises(TransportError, match="did not acknowledge"):
        pub.publish("fleet/x", b"1", qos=1)
    assert 0.9 <= time.monotonic() - started < 5
    ticket = pub.publish_async("fleet/x", b"2", qos=1)
    time.sleep(0.2)
    assert not ticket.done
    private_broker.resume()
    ticket.wait(10)  # acknowledged once the broker answers again
    assert ticket.acknowledged


def test_qos0_publish_does_not_wait_for_an_acknowledgement(
    private: Clients, private_broker: PrivateBroker
) -> None:
    pub = private.new(ack_timeout_s=1.0)
    private_broker.pause()
    started = time.monotonic()
    pub.publish("fleet/x", b"fire and forget", qos=0)
    assert time.monotonic() - started < 0.5
    private_broker.resume()


def test_publish_while_disconnected_fails_at_once_and_sends_nothing(
    private: Clients, private_broker: PrivateBroker
) -> None:
    pub = private.new()
    private_broker.stop()
    wait_until(lambda: not pub.connected, what="the disconnect to be noticed")
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"not connected to the broker at mqtt://127\.0\.0\.1"):
        pub.publish("fleet/x", b"1")
    assert time.monotonic() - started < 0.5
    assert pub.pending_publishes == 0
    private_broker.start()
    assert pub.wait_connected(10)
    pub.publish("fleet/x", b"2")


def test_subscriptions_come_back_after_a_broker_restart_that_lost_the_session(
    private: Clients, private_broker: PrivateBroker
) -> None:
    sub, pub = private.new(session_expiry_s=0), private.new()
    inbox = Inbox()
    sub.subscribe("fleet/+/events", inbox)
    pub.publish("fleet/a/events", b"before")
    inbox.wait_for(1)
    private_broker.kill()  # no session survives
    private_broker.start()
    assert sub.wait_connected(10) and pub.wait_connected(10)
    wait_until(lambda: _delivered_after_restart(pub, inbox), what="the subscription to return")
    assert inbox.payloads[0] == b"before" and b"after" in inbox.payloads


def _delivered_after_restart(pub: MqttTransport, inbox: Inbox) -> bool:
    try:
        pub.publish("fleet/a/events", b"after")
    except TransportError:
        return False  # reconnect still under way
    settle(0.1)
    return b"after" in inbox.payloads


def test_messages_queued_for_a_persistent_session_survive_a_graceful_broker_restart(
    private: Clients, private_broker: PrivateBroker
) -> None:
    client_id = unique_name("vehicle")
    away = private.new(client_id, session_expiry_s=600)
    away.subscribe("fleet/v1/commands", Inbox())
    away.close()
    pub = private.new()
    for i in range(3):
        pub.publish("fleet/v1/commands", f"c{i}".encode())
    private_broker.restart()  # SIGTERM saves sessions and queued messages
    inbox = Inbox()
    back = private.new(client_id, session_expiry_s=600)
    back.subscribe("fleet/v1/commands", inbox)
    assert inbox.wait_for(3) and inbox.payloads == [b"c0", b"c1", b"c2"]


def test_a_publish_in_flight_when_the_broker_dies_is_resent_after_the_reconnect(
    private: Clients, private_broker: PrivateBroker
) -> None:
    pub = private.new(ack_timeout_s=1.0)
    sub = private.new()
    private_broker.pause()
    ticket = pub.publish_async("fleet/x", b"in flight", qos=1)
    private_broker.kill()
    private_broker.start()
    ticket.wait(15)
    assert ticket.acknowledged
    assert sub.wait_connected(10)


def test_connections_count_the_first_connection_and_each_reconnect(
    private: Clients, private_broker: PrivateBroker
) -> None:
    client = private.new()
    assert client.connections == 1
    for expected in (2, 3):
        private_broker.restart()

        def back(n: int = expected) -> bool:
            return client.connections == n and client.connected

        wait_until(back, what=f"reconnect {expected - 1}")
    settle()
    assert client.connections == 3


def test_close_fails_the_tickets_still_waiting_for_the_broker(
    private: Clients, private_broker: PrivateBroker
) -> None:
    pub = private.new(ack_timeout_s=0.5)
    private_broker.pause()
    ticket = pub.publish_async("fleet/x", b"never acknowledged", qos=1)
    pub.close()
    assert ticket.done and not ticket.acknowledged
    assert isinstance(ticket.error, TransportClosedError)
    with pytest.raises(TransportClosedError, match="closed before the broker acknowledged"):
        ticket.wait(0)
    private_broker.resume()


def test_wrong_credentials_are_refused_with_the_brokers_reason(tmp_path: Path) -> None:
    with authenticated_broker(tmp_path) as broker:
        for username, password in (("vehicle1", "guess"), ("vehicle2", "s3cret"), (None, None)):
            with pytest.raises(TransportError, match=r"refused the connection: Not authorized"):
                MqttTransport(
                    broker.url, client_id=unique_name("c"), username=username, password=password
                )
        with MqttTransport(
            broker.url, client_id=unique_name("c"), username="vehicle1", password="s3cret"
        ) as vehicle:
            vehicle.publish("dt/v1/vehicle1/telemetry", b"mine")


def test_credentials_in_the_url_are_used_and_never_shown(tmp_path: Path) -> None:
    with authenticated_broker(tmp_path) as broker:
        url = f"mqtt://vehicle1:s3cret@127.0.0.1:{broker.port}"
        with MqttTransport(url, client_id=unique_name("c")) as vehicle:
            vehicle.publish("dt/v1/vehicle1/telemetry", b"ok")
            assert "s3cret" not in repr(vehicle)
        with pytest.raises(TransportError) as refused:
            MqttTransport(url.replace("s3cret", "wrong"), client_id=unique_name("c"))
        assert "wrong" not in str(refused.value)


def test_a_vehicle_cannot_publish_as_another_vehicle(tmp_path: Path) -> None:
    with (
        authenticated_broker(tmp_path) as broker,
        MqttTransport(
            broker.url, client_id=unique_name("c"), username="vehicle1", password="s3cret"
        ) as vehicle,
    ):
        with pytest.raises(TransportError, match=r"refused the message .*Not authorized \(0x87\)"):
            vehicle.publish("dt/v1/vehicle2/telemetry", b"spoofed")
        assert vehicle.connected  # refused, not disconnected: its own topics still work
        vehicle.publish("dt/v1/vehicle1/telemetry", b"mine")


def test_a_subscription_made_while_disconnected_is_made_on_the_next_connection(
    tmp_path: Path,
) -> None:
    broker = PrivateBroker(tmp_path / "late")
    late = MqttTransport(
        broker.url, client_id=unique_name("c"), wait_for_connection=False,
        reconnect_min_delay_s=0.1, reconnect_max_delay_s=0.2,
    )  # fmt: skip
    try:
        inbox = Inbox()
        late.subscribe("fleet/+/commands", inbox)  # returns at once: recorded for later
        broker.start()
        assert late.wait_connected(10)
        with MqttTransport(broker.url, client_id=unique_name("c")) as pub:
            wait_until(lambda: _delivered(pub, inbox, b"hello"), what="the late subscription")
    finally:
        late.close()
        broker.kill()


def _delivered(pub: MqttTransport, inbox: Inbox, payload: bytes) -> bool:
    pub.publish("fleet/v1/commands", payload)
    settle(0.1)
    return payload in inbox.payloads
