"""``ReadAheadClient``: paho's MQTT client with a cheaper receive path (paho-mqtt 2.2).

paho reads a packet with three or four ``recv`` calls (the type byte, each byte of the
remaining length, the rest) and goes back to ``select`` after every packet, then builds a
``Properties`` object, an ``MQTTMessage`` and a topic match per PUBLISH: about 50 us of the
network thread per received message. This subclass

- reads the socket 64 KiB at a time and serves paho's small reads from that buffer;
- handles every packet already read before returning to ``select`` (a burst is capped, so
  keep-alives and queued writes are never starved);
- decodes a QoS 0/1 MQTT 5 PUBLISH itself (only the Subscription Identifiers are taken from
  its properties) and hands it to ``on_publish_received`` without an ``MQTTMessage``;
- queues the PUBACKs of many messages as one write (``ack_many``).

Connecting, reconnecting, TLS, authentication, keep-alive and sessions stay paho's. These
overrides use private paho methods, so they are enabled only for the paho versions they were
tested with (``TESTED_PAHO``); any other version gets paho's own client and code path.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt import __version__ as paho_version
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

_log = logging.getLogger("drivetrain.transport")

#: paho-mqtt versions whose private methods the overrides below were tested against.
TESTED_PAHO = frozenset({"2.2.0"})
READ_SIZE = 65536
#: packets handled per ``loop_read`` before paho's loop gets a turn (writes, keep-alive).
BURST_PACKETS = 1000

_PUBACK = 0x40
_MQTTV5 = 5
#: (topic bytes, payload, qos, retain, dup, mid, subscription identifiers)
PublishHandler = Callable[[bytes, bytes, int, bool, bool, int, tuple[int, ...]], None]

# MQTT 5 §2.2.2.2: the PUBLISH properties other than the Subscription Identifier (0x0B), by
# how they are encoded: a fixed number of bytes, or length-prefixed (a UTF-8 pair: twice).
_FIXED = {0x01: 1, 0x02: 4, 0x23: 2}
_PREFIXED = {0x03: 1, 0x08: 1, 0x09: 1, 0x26: 2}


def fast_path_supported() -> bool:
    """True when the installed paho is one ``ReadAheadClient`` was tested with."""
    return paho_version in TESTED_PAHO


def _varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 21:
            raise MalformedPacket("bad variable byte integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def decode_publish(
    packet: bytes | bytearray, qos: int
) -> tuple[bytes, int, tuple[int, ...], bytes]:
    """An MQTT 5 PUBLISH after its fixed header: (topic, packet id, Subscription Identifiers,
    payload).

    Raises:
        MalformedPacket: the packet is truncated or carries an unknown property.
    """
    if len(packet) < 2:
        raise MalformedPacket("PUBLISH too short")
    end = 2 + ((packet[0] << 8) | packet[1])
    topic = bytes(packet[2:end])
    mid = 0
    if qos:
        if len(packet) < end + 2:
            raise MalformedPacket("PUBLISH without a packet identifier")
        mid = (packet[end] << 8) | packet[end + 1]
        end += 2
    length, pos = _varint(packet, end)
    end = pos + length
    if end > len(packet) or len(topic) + 2 > len(packet):
        raise MalformedPacket("PUBLISH properties overrun the packet")
    ids: list[int] = []
    try:
        while pos < end:
            prop = packet[pos]
            pos += 1
            if prop == 0x0B:
                value, pos = _varint(packet, pos)
                ids.append(value)
            elif prop in _FIXED:
                pos += _FIXED[prop]
            elif prop in _PREFIXED:
                for _ in range(_PREFIXED[prop]):
                    pos += 2 + ((packet[pos] << 8) | packet[pos + 1])
            else:
                raise MalformedPacket(f"unknown PUBLISH property 0x{prop:02x}")
    except IndexError:
        raise MalformedPacket("PUBLISH property truncated") from None
    if pos != end:
        raise MalformedPacket("PUBLISH properties overrun their length")
    return topic, mid, tuple(ids), bytes(packet[end:])


class ReadAheadClient(paho.Client):
    """paho's client with the receive path of the module docstring.

    Attributes:
        on_publish_received: called on the network thread for each QoS 0/1 PUBLISH; None:
            paho's ``on_message`` path.
        on_burst_end: called on the network thread after each batch of packets read.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_pos = 0
        self.on_publish_received: PublishHandler | None = None
        self.on_burst_end: Callable[[], None] | None = None

    def reconnect(self) -> MQTTErrorCode:
        """paho's ``reconnect``; bytes read ahead on the previous connection are dropped."""
        self._read_buffer, self._read_pos = b"", 0
        return super().reconnect()

    def _sock_recv(self, bufsize: int) -> bytes:
        buffer, pos = self._read_buffer, self._read_pos
        if pos >= len(buffer):
            buffer = super()._sock_recv(READ_SIZE)  # raises BlockingIOError when none
            if not buffer:
                return buffer  # the connection was closed
            pos = 0
            if bufsize >= len(buffer):
                self._read_buffer, self._read_pos = b"", 0
                return buffer
            self._read_buffer = buffer
        chunk = buffer[pos : pos + bufsize]
        self._read_pos = pos + len(chunk)
        return chunk

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle the packets that arrived: at least everything read ahead (``select`` does
        not see that buffer), and more while the socket has data, up to ``BURST_PACKETS``."""
        try:
            handled = 0
            while self._sock is not None:
                rc = self._packet_read()
                if rc > 0:
                    return self._loop_rc_handle(rc)
                if rc == paho.MQTT_ERR_AGAIN:
                    return paho.MQTT_ERR_SUCCESS  # read everything: nothing buffered
                handled += 1
                if handled >= BURST_PACKETS and self._read_pos >= len(self._read_buffer):
                    return paho.MQTT_ERR_SUCCESS
            return paho.MQTT_ERR_NO_CONN
        finally:
            if self.on_burst_end is not None:
                self.on_burst_end()

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_received
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos == 2 or self._protocol != _MQTTV5:
            return super()._handle_publish()
        topic, mid, ids, payload = decode_publish(self._in_packet["packet"], qos)
        with self._in_callback_mutex:
            try:
                handler(topic, payload, qos, bool(header & 0x01), bool(header & 0x08), mid, ids)
            except Exception as err:
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return paho.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> None:
        """Queue the PUBACKs of ``mids`` (QoS 1, ``manual_ack``) as one write."""
        packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
        if packet:
            self._packet_queue(_PUBACK, packet, 0, 0)


def ack_many(client: paho.Client, mids: Iterable[int]) -> None:
    """Send the PUBACKs of ``mids``: in one write with a ``ReadAheadClient``, else one by one."""
    if isinstance(client, ReadAheadClient):
        client.ack_many(mids)
        return
    for mid in mids:
        client.ack(mid, 1)
