"""``JetStreamTransport``: the backbone between ingest and its consumers on NATS JetStream.

The fleet profile carries what ingest and the domains commit (validated telemetry, security
events, twin changes, every other domain's status) on durable, replicated JetStream streams
(:mod:`.jetstream_streams`) instead of the in-process bus. It implements :class:`Transport`,
so the code above it is the same:

* ``publish`` waits for the stream's acknowledgement (the message is stored on a quorum of
  its replicas) and sends a ``Nats-Msg-Id`` header — by default a digest of the topic and the
  payload, or the caller's ``msg_id`` — so a publish retried after a lost acknowledgement is
  stored once (JetStream's duplicate window).
* ``subscribe("$share/{group}/{filter}")`` is a **consumer group**: a durable pull consumer
  named after the group, shared by every member, so each message goes to one of them and a
  restarted member resumes where the group stopped. A plain filter is a fan-out: an ephemeral
  consumer of this process that sees every message published after it subscribed.
* ``replay(filter, since, handler)`` reads the streams again from a point in time.
* ``namespace`` (the ``backbone_namespace`` setting) prefixes every stream name and subject
  on the server, so deployments or test runs sharing one JetStream do not see each other's
  messages; topics, filters and group names above the transport are the same in every one.
* A message is acknowledged when the handler returns (or, with ``manual_ack``, when the
  subscriber calls ``Message.ack()``); a handler that raises has it redelivered
  (``attempt`` counts the deliveries). Each delivered ``Message`` carries its
  ``Nats-Msg-Id`` as ``message_id`` so consumers can drop a redelivery.

nats-py is asynchronous; the transport runs its event loop on a thread of its own and hands
messages to handlers on one delivery thread, in order per subscription.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from drivetrain.core.errors import (
    ConfigurationError,
    InvalidTopicError,
    TransportClosedError,
    TransportError,
)
from drivetrain.core.transport.base import (
    Message,
    MessageHandler,
    PublishTicket,
    QoS,
    Subscription,
    Transport,
    TransportStats,
    as_payload_bytes,
    check_qos,
)
from drivetrain.core.transport.jetstream_streams import (
    BACKBONE_STREAMS,
    StreamSpec,
    check_namespace,
    consumer_targets,
    namespaced,
    subject_to_topic,
    topic_to_subject,
)
from drivetrain.core.transport.topics import split_shared_filter

try:  # the optional "fleet" extra
    import nats
    import nats.errors
    import nats.js.errors
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DeliverPolicy,
        StorageType,
        StreamConfig,
    )

    _HAVE_NATS = True
except ImportError:  # pragma: no cover - checked when a JetStreamTransport is made
    _HAVE_NATS = False

_log = logging.getLogger("drivetrain.transport.jetstream")
T = TypeVar("T")

#: The header JetStream deduplicates publishes by.
MSG_ID_HEADER: Final = "Nats-Msg-Id"
#: How long the streams remember message ids for deduplication, seconds.
DUPLICATE_WINDOW_S: Final = 120.0
#: Messages fetched per pull request.
FETCH_BATCH: Final = 256
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def parse_nats_url(url: str) -> list[str]:
    """The server URLs of ``nats://host:port[,host:port...]`` (a cluster's seed list).

    Raises:
        ConfigurationError: another scheme, or a host without a port that is not a number.
    """
    text = url.strip()
    if not text.lower().startswith("nats://"):
        raise ConfigurationError(f"backbone url {text!r}: expected nats://host[:port][,host:port]")
    servers = []
    for part in text[len("nats://"):].split(","):
        if not part.strip():
            raise ConfigurationError(f"backbone url {text!r}: an empty server in the list")
        try:
            address = urlsplit(f"nats://{part.strip()}")
            port = address.port or 4222
        except ValueError as e:
            raise ConfigurationError(f"backbone url {text!r}: {e}") from e
        if not address.hostname:
            raise ConfigurationError(f"backbone url {text!r}: server {part!r} has no host")
        servers.append(f"nats://{address.hostname}:{port}")
    return servers


def content_id(subject: str, payload: bytes) -> str:
    """The default ``Nats-Msg-Id``: a digest of subject and payload (a re-publish of the same
    bytes to the same subject is the same message)."""
    return hashlib.blake2b(subject.encode() + b"\0" + payload, digest_size=16).hexdigest()


class JetStreamTransport(Transport):
    """A :class:`Transport` on NATS JetStream (see the module docstring).

    Args:
        url: ``nats://host:port`` or a cluster's seed list ``nats://h1:p1,h2:p2``.
        client_id: this process's name on the server (shown in its connection list).
        streams: the streams to create on connect where missing (default: the backbone's);
            an existing stream keeps its settings.
        replicas: copies of each stream (3 in a cluster of three or more, 1 on one node).
        max_age_s: how long the streams keep messages, seconds (replay reaches that far).
        ack_timeout_s: how long ``publish`` waits for the stream's acknowledgement.
        redeliver_after_s: how long a delivered, unacknowledged message waits before the
            server sends it again (to another member of the group).
        namespace: prefix of the streams' names and subjects on the server ("" = none).

    Raises:
        ConfigurationError: a bad URL or namespace, or nats-py is not installed (the
            ``fleet`` extra).
        TransportError: no server answers within ``connect_timeout_s``, or the streams cannot
            be created.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = "drivetrain",
        streams: tuple[StreamSpec, ...] = BACKBONE_STREAMS,
        replicas: int = 1,
        max_age_s: float = 7 * 86_400.0,
        ack_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        redeliver_after_s: float = 30.0,
        namespace: str = "",
    ) -> None:
        if not _HAVE_NATS:
            raise ConfigurationError(
                "the JetStream backbone needs nats-py: pip install 'drivetrain[fleet]'"
            )
        if replicas < 1 or replicas > 5:
            raise ValueError(f"replicas must be 1..5, got {replicas}")
        self.url = url
        self.servers = parse_nats_url(url)
        self.client_id = client_id
        self.namespace = check_namespace(namespace, setting="namespace")
        self._prefix = f"{namespace}." if namespace else ""
        #: The streams as they are named on the server (in the namespace).
        self.streams = tuple(namespaced(spec, namespace) for spec in streams)
        self.replicas = replicas
        self.max_age_s = max_age_s
        self.ack_timeout_s = ack_timeout_s
        self.redeliver_after_s = redeliver_after_s
        self._closed = False
        self._lock = threading.Lock()
        self._counts = {"published": 0, "delivered": 0, "handler_errors": 0, "redelivered": 0}
        self._subscriptions: list[Subscription] = []
        self._tasks: dict[int, list[asyncio.Task[None]]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name=f"jetstream-{client_id}", daemon=True)
        self._thread.start()
        self._delivery = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"jetstream-delivery-{client_id}")
        try:
            self._run(self._connect(connect_timeout_s), connect_timeout_s + 30)
        except BaseException:
            self._stop_loop()
            raise

    # --- the event loop thread -------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError as e:
            future.cancel()
            raise TransportError(f"JetStream at {self.url}: no answer within {timeout_s} s") from e

    async def _connect(self, timeout_s: float) -> None:
        try:
            self._nc = await nats.connect(
                servers=self.servers, name=self.client_id, connect_timeout=min(timeout_s, 2.0),
                max_reconnect_attempts=-1, reconnect_time_wait=0.2, allow_reconnect=True,
                error_cb=self._on_error,
            )
        except (TimeoutError, OSError, nats.errors.Error) as e:
            raise TransportError(f"cannot connect to JetStream at {self.url}: {e}") from e
        self._js = self._nc.jetstream(timeout=self.ack_timeout_s)
        for spec in self.streams:
            await self._ensure_stream(spec)

    async def _on_error(self, error: Exception) -> None:
        _log.debug("JetStream connection %s: %s", self.client_id, error)

    async def _ensure_stream(self, spec: StreamSpec) -> None:
        config = StreamConfig(
            name=spec.name, subjects=[spec.subject], description=spec.description,
            storage=StorageType.FILE, num_replicas=self.replicas, max_age=self.max_age_s,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        deadline = asyncio.get_running_loop().time() + 20.0
        while True:
            try:
                try:
                    await self._js.add_stream(config)
                except nats.js.errors.BadRequestError:
                    # it exists with other settings: those of whoever made it stay (an
                    # operator changes a stream deliberately, e.g. with the nats CLI)
                    await self._js.stream_info(spec.name)
                return
            except (TimeoutError, nats.errors.Error) as e:
                # a cluster that just started has no meta leader for a moment
                if asyncio.get_running_loop().time() > deadline:
                    raise TransportError(f"cannot create stream {spec.name!r}: {e}") from e
                await asyncio.sleep(0.25)

    # --- publishing -------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False,
                msg_id: str | None = None) -> None:
        """Store ``payload`` on the stream of ``topic`` and wait for its acknowledgement.

        ``msg_id`` names the message for deduplication (default: a digest of topic and
        payload). ``qos`` is accepted for the interface: every publish is acknowledged.

        Raises:
            ValueError: ``retain`` (streams have no retained messages) or a bad ``qos``.
            InvalidTopicError: ``topic`` is not a valid topic name.
            TransportClosedError: the transport is closed.
            TransportError: no stream stores the topic, or no acknowledgement in time.
        """
        self.publish_async(topic, payload, qos=qos, retain=retain,
                           msg_id=msg_id).wait(self.ack_timeout_s + 1)

    def publish_async(self, topic: str, payload: bytes, *, qos: QoS = 1, retain: bool = False,
                      msg_id: str | None = None) -> PublishTicket:
        """Like :meth:`publish`, returning at once with a ticket completed on the stream's
        acknowledgement (many may be in flight)."""
        check_qos(qos)
        if retain:
            raise ValueError("the JetStream backbone has no retained messages (retain=True)")
        data = as_payload_bytes(payload)
        if any(c in topic for c in "+#"):
            raise InvalidTopicError(f"topic {topic!r}: a topic name has no wildcards")
        subject = self._prefix + topic_to_subject(topic)
        if self._closed:
            raise TransportClosedError(f"cannot publish to {topic!r}: the transport is closed")
        ticket = PublishTicket(topic, qos)
        headers = {MSG_ID_HEADER: msg_id or content_id(subject, data)}
        future = asyncio.run_coroutine_threadsafe(self._store(subject, data, headers),
                                                  self._loop)

        def done(f: concurrent.futures.Future[Any]) -> None:
            error = f.exception() if not f.cancelled() else TransportError("publish cancelled")
            if error is None:
                with self._lock:
                    self._counts["published"] += 1
                ticket.complete()
            elif isinstance(error, nats.js.errors.NoStreamResponseError):
                ticket.complete(TransportError(f"no backbone stream stores {topic!r}"))
            else:
                ticket.complete(TransportError(
                    f"JetStream did not acknowledge {topic!r}: {type(error).__name__} {error}"))

        future.add_done_callback(done)
        return ticket

    async def _store(self, subject: str, data: bytes, headers: dict[str, str]) -> Any:
        """Publish with many acknowledgements outstanding (one reply subscription for all,
        nats-py's ``publish_async``), then wait for this one's."""
        pending = await self._js.publish_async(subject, data, headers=headers,
                                               wait_stall=self.ack_timeout_s)
        return await asyncio.wait_for(pending, self.ack_timeout_s)

    # --- subscribing ------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: MessageHandler, *, qos: QoS = 1,
                  manual_ack: bool = False) -> Subscription:
        """Deliver matching messages to ``handler``; ``$share/{group}/{filter}`` joins the
        group's durable consumer (see the module docstring).

        Raises:
            InvalidTopicError: a bad filter, or one no stream stores.
            TransportClosedError: the transport is closed.
            TransportError: the consumer cannot be created.
        """
        return self._subscribe(topic_filter, handler, qos, manual_ack, since=None)

    def replay(self, topic_filter: str, since: datetime, handler: MessageHandler, *,
               manual_ack: bool = False) -> Subscription:
        """Deliver every stored message matching ``topic_filter`` published at or after
        ``since`` (then the new ones), to this subscriber alone.

        Raises:
            ValueError: ``since`` has no timezone.
            InvalidTopicError, TransportClosedError, TransportError: as :meth:`subscribe`.
        """
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware (UTC)")
        return self._subscribe(topic_filter, handler, 1, manual_ack, since=since)

    def _subscribe(self, topic_filter: str, handler: MessageHandler, qos: QoS,
                   manual_ack: bool, since: datetime | None) -> Subscription:
        check_qos(qos)
        if self._closed:
            raise TransportClosedError(f"cannot subscribe to {topic_filter!r}: closed")
        group, plain = split_shared_filter(topic_filter)
        if group is not None and since is not None:
            raise ValueError("replay is for one subscriber, not a shared group")
        subject = self._prefix + topic_to_subject(plain)
        targets = consumer_targets(subject, self.streams)
        subscription = Subscription(topic_filter, handler, qos, group, plain,
                                    self._unsubscribe, manual_ack)
        pulls = self._run(self._consumers(subscription, subject, targets, group, since),
                          self.ack_timeout_s + 10)
        tasks: list[asyncio.Task[None]] = []
        with self._lock:
            self._subscriptions.append(subscription)
            self._tasks[id(subscription)] = tasks
        for pull in pulls:
            future = asyncio.run_coroutine_threadsafe(self._start_pump(subscription, pull),
                                                      self._loop)
            tasks.append(future.result(self.ack_timeout_s))
        return subscription

    async def _consumers(self, subscription: Subscription, subject: str, targets: list[Any],
                         group: str | None, since: datetime | None) -> list[Any]:
        pulls = []
        for target in targets:
            config = ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT, ack_wait=self.redeliver_after_s,
                max_ack_pending=10_000, filter_subject=target.filter_subject,
            )
            if since is not None:
                config.deliver_policy = DeliverPolicy.BY_START_TIME
                config.opt_start_time = since.astimezone(UTC)
            elif group is None:
                config.deliver_policy = DeliverPolicy.NEW
            else:
                config.deliver_policy = DeliverPolicy.ALL
            if group is not None:
                digest = hashlib.blake2b(subject.encode(), digest_size=4).hexdigest()
                config.durable_name = f"{_NAME.sub('_', group)[:40]}-{digest}"
            else:
                config.inactive_threshold = max(self.redeliver_after_s, 60.0)
            try:
                info = await self._retrying(
                    functools.partial(self._js.add_consumer, target.stream, config))
                pulls.append(await self._js.pull_subscribe_bind(
                    durable=info.name, stream=target.stream))
            except (TimeoutError, nats.errors.Error) as e:
                raise TransportError(
                    f"cannot subscribe to {subscription.topic_filter!r} on stream "
                    f"{target.stream!r}: {e}") from e
        return pulls

    async def _retrying(self, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        deadline = asyncio.get_running_loop().time() + self.ack_timeout_s
        while True:
            try:
                return await call()
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError,
                    nats.errors.NoRespondersError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.25)

    async def _start_pump(self, subscription: Subscription, pull: Any) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._pump(subscription, pull))

    async def _pump(self, subscription: Subscription, pull: Any) -> None:
        loop = asyncio.get_running_loop()
        while subscription.active and not self._closed:
            try:
                batch = await pull.fetch(FETCH_BATCH, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):  # nothing came (a bare one too)
                continue
            except asyncio.CancelledError:
                raise
            except nats.errors.Error as e:  # server away: the client reconnects; try again
                _log.debug("fetch on %s: %s", subscription.topic_filter, e)
                await asyncio.sleep(0.2)
                continue
            except Exception as e:  # noqa: BLE001 - a dead pump would silently receive nothing
                _log.warning("fetch on %s: %r; retrying", subscription.topic_filter, e)
                await asyncio.sleep(0.2)
                continue
            for msg in batch:
                if not subscription.active:
                    return  # unacknowledged: the server sends it again
                message = self._message(msg, subscription)
                try:
                    await loop.run_in_executor(self._delivery, subscription.handler, message)
                except Exception as e:  # noqa: BLE001 - a handler's failure means redeliver
                    with self._lock:
                        self._counts["handler_errors"] += 1
                        self._counts["redelivered"] += 1
                    _log.warning("handler of %s raised on %s (redelivered): %s",
                                 subscription.topic_filter, msg.subject, e)
                    await self._settle(msg.nak())
                    continue
                with self._lock:
                    self._counts["delivered"] += 1
                if not subscription.manual_ack:
                    await self._settle(msg.ack())

    async def _settle(self, call: Coroutine[Any, Any, Any]) -> None:
        try:
            await call
        except nats.errors.Error as e:  # the server redelivers what it did not hear
            _log.debug("acknowledgement not sent: %s", e)

    def _message(self, msg: Any, subscription: Subscription) -> Message:
        attempt = 1
        try:
            attempt = max(1, int(msg.metadata.num_delivered))
        except (AttributeError, ValueError, TypeError):
            pass
        headers = msg.headers or {}

        def ack() -> None:
            if subscription.manual_ack and not self._closed:
                asyncio.run_coroutine_threadsafe(self._settle(msg.ack()), self._loop)

        subject = str(msg.subject)
        if self._prefix and subject.startswith(self._prefix):
            subject = subject[len(self._prefix):]
        return Message(subject_to_topic(subject), bytes(msg.data), 1, False, attempt,
                       ack, message_id=str(headers.get(MSG_ID_HEADER, "")))

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            tasks = self._tasks.pop(id(subscription), [])
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
        for task in tasks:
            self._loop.call_soon_threadsafe(task.cancel)

    # --- the rest of the interface ----------------------------------------------------------
    def stream_name(self, stream: str) -> str:
        """The server's name of the backbone stream ``stream`` (``telemetry-validated``) in
        this transport's namespace."""
        return f"{self.namespace}-{stream}" if self.namespace else stream

    def stream_messages(self, stream: str) -> int:
        """How many messages ``stream`` (its name without the namespace) holds now.

        Raises:
            TransportError: the stream does not exist or the server does not answer.
        """
        return int(self._stream_info(stream).state.messages)

    def stream_leader(self, stream: str) -> str | None:
        """The server name of the node leading ``stream`` (its name without the namespace)
        now; None on a single server without a cluster.

        Raises:
            TransportError: the stream does not exist or the server does not answer.
        """
        cluster = self._stream_info(stream).cluster
        return None if cluster is None else cluster.leader

    def delete_streams(self, names: Iterable[str] | None = None) -> list[str]:
        """Delete streams and their consumers from the server: ``names`` as the server names
        them, or by default this namespace's (a test run's or a retired deployment's).
        Returns the names deleted; streams already gone are skipped.

        Raises:
            ValueError: no ``names`` and no namespace (the plain streams are everyone's).
            TransportError: the server does not answer.
        """
        if names is None:
            if not self.namespace:
                raise ValueError(
                    "delete_streams needs a namespace: the plain streams are shared")
            names = [spec.name for spec in self.streams]
        chosen = list(names)
        return self._run(self._delete_streams(chosen), self.ack_timeout_s * len(chosen) + 5)

    async def _delete_streams(self, names: list[str]) -> list[str]:
        deleted = []
        for name in names:
            try:
                await self._js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                continue
            except nats.errors.Error as e:
                raise TransportError(f"cannot delete stream {name!r}: {e}") from e
            deleted.append(name)
        return deleted

    def _stream_info(self, stream: str) -> Any:
        name = self.stream_name(stream)
        try:
            return self._run(self._js.stream_info(name), self.ack_timeout_s + 1)
        except nats.errors.Error as e:
            raise TransportError(f"stream {name!r}: {e}") from e

    def stats(self) -> TransportStats:
        """Counters since the transport was created."""
        with self._lock:
            return TransportStats(**self._counts)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the subscriptions, drain the connection and stop the loop; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.unsubscribe()
        try:
            self._run(self._finish(), 5.0)
        except (TransportError, nats.errors.Error) as e:
            _log.debug("closing %s: %s", self.client_id, e)
        self._stop_loop()

    async def _finish(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current and t.get_coro() is not None
                 and getattr(t.get_coro(), "__qualname__", "").endswith("_pump")]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._nc.close()

    def _stop_loop(self) -> None:
        self._delivery.shutdown(wait=False, cancel_futures=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()
