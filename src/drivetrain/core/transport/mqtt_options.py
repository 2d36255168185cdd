"""Broker addresses and the words for MQTT outcomes: what ``MqttTransport`` is configured with.

``parse_broker_url`` reads ``mqtt://host[:port]`` and ``mqtts://host[:port]`` (TLS) URLs,
optionally with ``user[:password]@``; ``TlsFiles`` names the CA bundle and the client's own
certificate and key (a vehicle authenticates to the broker with its own credentials). The
``describe_*`` helpers turn paho's error codes and MQTT 5 reason codes into the text of a
``TransportError``, so no paho type reaches a caller.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.client import error_string
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from drivetrain.core.errors import ConfigurationError
from drivetrain.core.transport.mqtt_client import ReadAheadClient, fast_path_supported

#: Default ports (IANA): 1883 for MQTT over TCP, 8883 for MQTT over TLS.
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens and, optionally, the credentials given in the URL.

    Attributes:
        scheme: ``mqtt`` (plain TCP) or ``mqtts`` (TLS).
        host: host name or IP address.
        port: TCP port (1-65535).
        username: from the URL's user part, or None.
        password: from the URL's user part, or None (never shown in ``repr`` or ``display``).
    """

    scheme: Literal["mqtt", "mqtts"]
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        """True for ``mqtts://``."""
        return self.scheme == "mqtts"

    @property
    def display(self) -> str:
        """The URL without the password, for messages and logs."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Read a broker URL: ``mqtt://host[:port]`` or ``mqtts://host[:port]``.

    A user part (``mqtt://user:secret@host``) is percent-decoded into the credentials. The
    default port is 1883 for ``mqtt`` and 8883 for ``mqtts``.

    Raises:
        ConfigurationError: not a URL of that form; the message quotes it without a password.
    """
    if not isinstance(url, str):
        raise TypeError(f"broker url must be a str, got {type(url).__name__}")
    parts = urlsplit(url.strip())
    shown = _without_password(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigurationError(
            f"broker url {shown!r}: expected the scheme mqtt:// or mqtts://, got "
            f"{parts.scheme + '://' if parts.scheme else 'none'}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"broker url {shown!r}: expected only {scheme}://host[:port], without a path, "
            "query or fragment"
        )
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigurationError(
            f"broker url {shown!r}: the port must be a number from 1 to 65535"
        ) from e
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"broker url {shown!r}: expected a host name after {scheme}://")
    if port == 0:
        raise ConfigurationError(f"broker url {shown!r}: the port must be from 1 to 65535")
    return BrokerAddress(
        scheme="mqtts" if scheme == "mqtts" else "mqtt",
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"


@dataclass(frozen=True)
class TlsFiles:
    """Files for an ``mqtts://`` connection (PEM).

    Attributes:
        ca_file: CA certificates that sign the broker's certificate; None trusts the system's
            default CAs.
        cert_file: the client's certificate (its identity at the broker), or None.
        key_file: the client's private key; None when it is in ``cert_file``.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client TLS context: TLS >= 1.2, the broker's certificate and host name verified.

        Raises:
            ConfigurationError: a file is missing or not a PEM certificate/key, or a key
                without a certificate.
        """
        if self.key_file is not None and self.cert_file is None:
            raise ConfigurationError(
                f"TLS key_file {str(self.key_file)!r} given without cert_file: expected both "
                "(or only cert_file when it holds the key)"
            )
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.sslsocket_class = _ClosingSSLSocket
        if self.ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as e:
                raise ConfigurationError(
                    f"TLS ca_file {str(self.ca_file)!r}: expected a readable PEM file of CA "
                    f"certificates ({e})"
                ) from e
        if self.cert_file is not None:
            try:
                context.load_cert_chain(
                    certfile=str(self.cert_file),
                    keyfile=None if self.key_file is None else str(self.key_file),
                )
            except (OSError, ssl.SSLError) as e:
                raise ConfigurationError(
                    f"TLS cert_file {str(self.cert_file)!r} / key_file "
                    f"{str(self.key_file) if self.key_file else '(in cert_file)'!r}: expected a "
                    f"readable PEM certificate and its matching private key ({e})"
                ) from e
        return context


@dataclass(frozen=True)
class ClientOptions:
    """How an ``MqttTransport`` talks to its broker (see ``MqttTransport`` for each field).

    Raises:
        ValueError: a value outside its range (named, with the range).
    """

    client_id: str
    session_expiry_s: int = 0
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    ack_timeout_s: float = 30.0
    reconnect_min_delay_s: float = 0.5
    reconnect_max_delay_s: float = 30.0
    max_inflight: int = 100
    receive_maximum: int = 1000
    max_attempts: int = 3

    def __post_init__(self) -> None:
        cid = self.client_id
        if not isinstance(cid, str) or not cid or len(cid.encode()) > 65535 or "\x00" in cid:
            raise ValueError(
                f"client_id must be a non-empty str of <= 65535 bytes without NUL, got {cid!r}"
            )
        _in_range("session_expiry_s", self.session_expiry_s, 0, 0xFFFFFFFF)  # §3.1.2.11.2
        _in_range("keepalive_s", self.keepalive_s, 0, 65535)
        _in_range("max_inflight", self.max_inflight, 1, 65535)
        _in_range("receive_maximum", self.receive_maximum, 1, 65535)  # §3.1.2.11.3
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("connect_timeout_s", "ack_timeout_s", "reconnect_min_delay_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.reconnect_max_delay_s < self.reconnect_min_delay_s:
            raise ValueError(
                f"reconnect_max_delay_s ({self.reconnect_max_delay_s}) must be >= "
                f"reconnect_min_delay_s ({self.reconnect_min_delay_s})"
            )


def _in_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int from {low} to {high}, got {value!r}")


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the TLS handshake fails (paho drops such a socket without closing
    it, which would leak the file descriptor until garbage collection)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def new_client(
    address: BrokerAddress,
    options: ClientOptions,
    username: str | None,
    password: str | None,
    tls: TlsFiles,
) -> paho.Client:
    """A paho MQTT 5 client set up from ``options`` (callbacks are the caller's).

    Credentials given here win over those in the URL. Messages are acknowledged manually:
    the transport sends each PUBACK once the message is handled.

    Raises:
        ConfigurationError: a password without a username, TLS files for ``mqtt://``, or
            unreadable TLS files.
    """
    # paho's own client where our receive path was not tested with the installed paho
    client_type = ReadAheadClient if fast_path_supported() else paho.Client
    client = client_type(
        CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=paho.MQTTv5,
        manual_ack=True,
    )
    client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
    client.connect_timeout = options.connect_timeout_s
    client.max_inflight_messages_set(options.max_inflight)
    client.max_queued_messages_set(0)  # unbounded: publish_async callers bound themselves
    # paho types the delays as int; fractions work and keep tests short
    client.reconnect_delay_set(
        options.reconnect_min_delay_s,  # type: ignore[arg-type]
        options.reconnect_max_delay_s,  # type: ignore[arg-type]
    )
    user = username if username is not None else address.username
    secret = password if password is not None else address.password
    if user is not None:
        client.username_pw_set(user, secret)
    elif secret is not None:
        raise ConfigurationError(
            f"broker {address.display}: a password was given without a username"
        )
    if address.tls:
        client.tls_set_context(tls.context())
    elif tls != TlsFiles():
        raise ConfigurationError(
            f"broker {address.display}: TLS files were given for a plain mqtt:// URL; use mqtts://"
        )
    return client


def connect_properties(options: ClientOptions) -> Properties:
    """CONNECT properties: Session Expiry Interval (§3.1.2.11.2, persistent when > 0) and
    Receive Maximum (§3.1.2.11.3)."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if options.session_expiry_s:
        properties.SessionExpiryInterval = options.session_expiry_s
    properties.ReceiveMaximum = options.receive_maximum
    return properties


def describe_reason(reason: ReasonCode) -> str:
    """An MQTT 5 reason code as text, e.g. ``'Not authorized (0x87)'``."""
    return f"{reason.getName()} (0x{reason.value:02X})"


def describe_error(code: MQTTErrorCode | int) -> str:
    """A paho client error code as text, e.g. ``'The connection was lost. (MQTT_ERR_CONN_LOST)'``."""
    try:
        name = MQTTErrorCode(code).name
    except ValueError:
        name = f"code {int(code)}"
    return f"{error_string(code).rstrip('.')} ({name})"
