"""``BrokerLink``: the connection of ``MqttTransport`` to its broker, and its state.

It starts the paho client (connecting at once, or in the background), records why a
connection attempt failed or was lost, counts connection epochs (a packet id of an older
epoch means nothing on the current connection) and shuts the network side down. The parts of
the transport read and change this state under ``lock``.
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from drivetrain.core.errors import TransportClosedError, TransportError
from drivetrain.core.transport.mqtt_options import (
    BrokerAddress,
    ClientOptions,
    connect_properties,
    describe_error,
    describe_reason,
)

_log = logging.getLogger("drivetrain.transport")


class BrokerLink:
    """The connection to one broker (see the module docstring).

    Attributes:
        lock: guards this state and the transport's tables.
        connected: set while a connection is up (CONNACK received, not yet lost).
        epoch: changes on every connect and disconnect.
        connections: connections the broker accepted (CONNACK without failure) so far.
        last_error: why the last attempt failed or the connection was lost, or None.
        closed: the transport refuses publish and subscribe.
        closing: the network side is shutting down.
    """

    def __init__(self, address: BrokerAddress, options: ClientOptions, client: paho.Client) -> None:
        self.address = address
        self.options = options
        self.client = client
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.epoch = 0
        self.connections = 0
        self.last_error: str | None = None
        self.closed = False
        self.closing = False
        self._first_attempt = threading.Event()
        self._first_refusal: str | None = None

    def start(self, wait: bool) -> None:
        """Connect and start paho's network thread.

        Args:
            wait: connect here and wait for the first CONNACK (else paho's thread connects
                and keeps trying in the background).

        Raises:
            TransportError: ``wait`` and the broker cannot be reached, refuses the connection
                or does not answer within ``connect_timeout_s``; the message names the URL.
        """
        options, where = self.options, self.address.display
        if self.address.tls:  # a broker refuses a client certificate by closing the connection
            where += " (over TLS; if the connection was lost, check the client certificate)"
        arguments = (self.address.host, self.address.port, options.keepalive_s)
        clean_start = options.session_expiry_s == 0
        properties = connect_properties(options)
        try:
            if wait:  # connect here, so a refused or unreachable broker raises here
                rc = self.client.connect(*arguments, clean_start=clean_start, properties=properties)
                if rc != paho.MQTT_ERR_SUCCESS:
                    raise TransportError(
                        f"cannot connect to the broker at {where}: {describe_error(rc)}"
                    )
            else:  # paho's network thread connects, and keeps trying
                self.client.connect_async(
                    *arguments, clean_start=clean_start, properties=properties
                )
        except (OSError, ValueError) as e:  # refused, unreachable, DNS, TLS (ssl.SSLError)
            raise TransportError(f"cannot connect to the broker at {where}: {os_text(e)}") from e
        self.client.loop_start()
        if not wait:
            return
        if not self._first_attempt.wait(options.connect_timeout_s) or not self.connected.is_set():
            with self.lock:
                reason = self._first_refusal or self.last_error
            reason = reason or f"no CONNACK within {options.connect_timeout_s} s"
            raise TransportError(f"cannot connect to the broker at {where}: {reason}")

    def refused(self, reason: ReasonCode) -> None:
        """The broker refused a connection attempt (a CONNACK reason code >= 0x80)."""
        refusal = f"the broker refused the connection: {describe_reason(reason)}"
        with self.lock:
            self.last_error = refusal
            if not self._first_attempt.is_set():
                self._first_refusal = refusal  # a later disconnect overwrites last_error
                self._first_attempt.set()
        _log.warning("%s: %s", self.address.display, refusal)

    def accepted(self, properties: Properties | None) -> None:
        """A connection is up (call under ``lock``, then set ``connected``)."""
        # Never exceed the broker's Receive Maximum (MQTT 5 §3.2.2.3.3). paho's setter refuses
        # an open connection only because of a switch between 0 (unlimited) and N, which
        # cannot happen here: both values are >= 1.
        receive_max = int(getattr(properties, "ReceiveMaximum", 65535))
        self.client._max_inflight_messages = min(self.options.max_inflight, receive_max)
        self.epoch += 1
        self.connections += 1
        self.last_error = None

    def first_attempt_done(self) -> None:
        self._first_attempt.set()

    def unreachable(self) -> None:
        """A connection attempt found no broker (paho's ``on_connect_fail``)."""
        with self.lock:
            self.last_error = f"cannot reach the broker at {self.address.display}"

    def lost(self, reason: ReasonCode) -> bool:
        """The connection is down (call under ``lock``); returns whether it was up."""
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.epoch += 1
        if reason.is_failure:
            self.last_error = f"connection lost: {describe_reason(reason)}"
        return was_connected

    def paho_logger(self) -> logging.Logger:
        """The logger paho writes to: its errors and warnings go to the ``drivetrain.transport``
        logger, everything else is dropped before paho's text is formatted (an ``on_log``
        callback has it formatted for every packet: a PUBLISH's properties as text, per
        message)."""
        return _PahoLog(self)

    def paho_said(self, level: int, text: str) -> None:
        """One error or warning from paho (``logging`` level)."""
        # paho reports caught callback exceptions and socket errors here; its "not connected"
        # complaint after our own DISCONNECT is expected
        if self.closing and text.startswith("Client is not connected"):
            return
        _log.log(level, "paho (%s): %s", self.options.client_id, text)

    def raise_if_closed(self, action: str) -> None:
        """Raises ``TransportClosedError`` once the transport is closed."""
        if self.closed:
            raise TransportClosedError(f"cannot {action}: the transport is closed")

    def shutdown(self, end_session: bool = False) -> None:
        """Disconnect (after the acknowledgements already queued) and stop paho's thread;
        ``end_session`` asks the broker to discard a persistent session."""
        self.closing = True
        properties = None
        if end_session and self.options.session_expiry_s:  # 0 already ends it (§3.14.2.2.2)
            properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0
        # queued after pending PUBACKs, so those go out first
        self.client.disconnect(properties=properties)
        self.client.loop_stop()  # joins paho's network thread (unless called on it)
        self.connected.clear()


def os_text(error: BaseException) -> str:
    """``TypeName: reason`` of an OS-level error (refused, unreachable, TLS)."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"


class _PahoLog(logging.Logger):
    """What paho's ``_easy_log`` calls (``log(level, fmt, *args)``), passing on only errors
    and warnings; below that the arguments are never formatted."""

    def __init__(self, link: BrokerLink) -> None:
        super().__init__("drivetrain.transport.paho")
        self._link = link

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if level < logging.WARNING:
            return
        self._link.paho_said(level, str(msg) % args if args else str(msg))
