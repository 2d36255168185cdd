"""``open_transport``: the one place that turns a broker URL into a ``Transport``.

Edge agents and cloud workers call it with ``Settings.broker_url``: None or ``inprocess://``
gives the embedded in-process bus, ``mqtt://``/``mqtts://`` an ``MqttTransport``. Several
in-process clients of one bus (an edge agent and an ingest worker in the same process) each get
a ``BusClient`` view of the shared ``InProcessTransport``, so closing one client ends its own
subscriptions without stopping the bus.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import SecretStr

from drivetrain.core.errors import ConfigurationError, TransportClosedError
from drivetrain.core.transport.base import (
    MessageHandler,
    QoS,
    Subscription,
    Transport,
    TransportStats,
)
from drivetrain.core.transport.inprocess import InProcessTransport
from drivetrain.core.transport.mqtt import MqttTransport

#: The URL that names the in-process bus explicitly (None means the same).
INPROCESS_URL = "inprocess://"


class BusClient(Transport):
    """One client's view of a shared ``InProcessTransport``.

    Publishes and subscribes go to the bus; ``close()`` ends this client's subscriptions and
    refuses its further calls, and leaves the bus (and other clients) running.
    """

    def __init__(self, bus: InProcessTransport, client_id: str) -> None:
        self.bus = bus
        self.client_id = client_id
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._closed = False

    def publish(self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False) -> None:
        """See ``InProcessTransport.publish``.

        Raises:
            TransportClosedError: this client (or the bus) is closed.
        """
        self._raise_if_closed(f"publish to {topic!r}")
        self.bus.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(
        self,
        topic_filter: str,
        handler: MessageHandler,
        *,
        qos: QoS = 1,
        manual_ack: bool = False,
    ) -> Subscription:
        """See ``InProcessTransport.subscribe``; the subscription ends with this client.

        Raises:
            TransportClosedError: this client (or the bus) is closed.
        """
        self._raise_if_closed(f"subscribe to {topic_filter!r}")
        subscription = self.bus.subscribe(topic_filter, handler, qos=qos, manual_ack=manual_ack)
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s.active]
            self._subscriptions.append(subscription)
        return subscription

    def close(self) -> None:
        """End this client's subscriptions; the bus keeps running. Idempotent."""
        with self._lock:
            self._closed = True
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.unsubscribe()

    @property
    def closed(self) -> bool:
        """True once this client (or the bus) is closed."""
        return self._closed or self.bus.closed

    def stats(self) -> TransportStats:
        """The bus's counters (shared by every client of the bus)."""
        return self.bus.stats()

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait until the bus delivered everything queued (see ``InProcessTransport.drain``)."""
        self.bus.drain(timeout_s)

    def _raise_if_closed(self, action: str) -> None:
        if self._closed:
            raise TransportClosedError(f"cannot {action}: client {self.client_id!r} is closed")


def open_transport(
    url: str | None,
    *,
    client_id: str,
    bus: InProcessTransport | None = None,
    username: str | None = None,
    password: str | SecretStr | None = None,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    session_expiry_s: int = 0,
    keepalive_s: int = 30,
    connect_timeout_s: float = 10.0,
    wait_for_connection: bool = True,
    ack_timeout_s: float = 30.0,
    receive_maximum: int = 1000,
) -> Transport:
    """The transport for ``url``: in-process for None/``inprocess://``, MQTT 5 otherwise.

    Args:
        url: None or ``inprocess://`` (the embedded bus), ``mqtt://host[:port]`` or
            ``mqtts://host[:port]``.
        client_id: the MQTT client id (a persistent session belongs to it); for the
            in-process bus, the client's name.
        bus: the shared in-process bus to join; None with an in-process URL makes a new
            ``InProcessTransport`` owned by the caller.
        password: the broker password, best as the ``SecretStr`` of ``Settings.broker_password``
            (revealed only to the MQTT client).
        username, password, ca_file, cert_file, key_file, session_expiry_s, keepalive_s,
        connect_timeout_s, wait_for_connection, ack_timeout_s, receive_maximum: see
            ``MqttTransport``
            (ignored for the in-process bus, which has no broker to authenticate to).

    Raises:
        ConfigurationError: a URL with another scheme, a malformed one, or bad TLS files.
        TransportError: the broker cannot be reached or refuses the connection (with
            ``wait_for_connection``).
    """
    if url is None or url.strip() == INPROCESS_URL:
        if bus is not None:
            return BusClient(bus, client_id)
        return InProcessTransport()
    if not url.strip().lower().startswith(("mqtt://", "mqtts://")):
        scheme = url.split("://", 1)[0] + "://" if "://" in url else repr(url)
        raise ConfigurationError(
            f"transport url {scheme}...: expected None or {INPROCESS_URL!r} (in-process), "
            "mqtt://host[:port] or mqtts://host[:port]"
        )
    return MqttTransport(
        url,
        client_id=client_id,
        username=username,
        password=password.get_secret_value() if isinstance(password, SecretStr) else password,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        session_expiry_s=session_expiry_s,
        keepalive_s=keepalive_s,
        connect_timeout_s=connect_timeout_s,
        wait_for_connection=wait_for_connection,
        ack_timeout_s=ack_timeout_s,
        receive_maximum=receive_maximum,
    )
