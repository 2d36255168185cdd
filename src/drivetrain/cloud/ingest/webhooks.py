"""Campaign webhook destinations: each committed batch's accepted samples of a campaign, POSTed
as one JSON document (the same document an MQTT destination receives) to the campaign's URLs.

* Signed: ``X-Drivetrain-Signature: sha256=<hex>`` is HMAC-SHA256 over the exact body with the
  campaign's webhook secret, itself HMAC-SHA256 of the deployment's key over
  ``tenant/campaign`` (:func:`webhook_secret`; the API returns it when the campaign is written).
  ``X-Drivetrain-Campaign`` names the campaign.
* Never blocks ingestion: :meth:`WebhookSender.submit` puts the post on a bounded queue that a
  background thread drains; a full queue drops the post (counted in :class:`WebhookStats`).
* Bounded: a connect/read timeout per attempt, at most ``attempts`` tries with exponential
  backoff on a network failure, a 5xx or 429; any other status is final.
* SSRF: the host is resolved at each post and refused when any of its addresses is loopback,
  link-local, private, reserved, multicast or unspecified (unless ``allow_private``); the
  connection goes to the address that was checked, so a DNS answer that changes in between
  cannot redirect it. Redirects are not followed.

Delivery is at most ``attempts`` tries: the lake holds every row.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from drivetrain.core.settings import Settings

_log = logging.getLogger("drivetrain.ingest.webhooks")

SIGNATURE_HEADER: Final = "X-Drivetrain-Signature"
CAMPAIGN_HEADER: Final = "X-Drivetrain-Campaign"
_SECRET_LABEL: Final = b"drivetrain campaign webhook\0"


def webhook_secret(key: bytes, tenant: str, campaign: str) -> str:
    """The secret a campaign's webhook posts are signed with (hex)."""
    derived = hmac.new(key, _SECRET_LABEL, hashlib.sha256).digest()
    return hmac.new(derived, f"{tenant}/{campaign}".encode(), hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class RefusedAddressError(ValueError):
    """A webhook URL whose host resolves to an address this deployment does not post to."""


def vetted_address(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for ``host``; raises :class:`RefusedAddressError` when it
    does not resolve or any of its addresses is not a public one (unless ``allow_private``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise RefusedAddressError(f"webhook host {host!r} does not resolve: {e}") from e
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    if not addresses:
        raise RefusedAddressError(f"webhook host {host!r} has no address")
    if not allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text)
            mapped = getattr(address, "ipv4_mapped", None)
            if not (mapped or address).is_global or address.is_multicast:
                raise RefusedAddressError(
                    f"webhook host {host!r} resolves to {text}, a loopback, link-local, "
                    "private or reserved address; set DRIVETRAIN_CAMPAIGN_WEBHOOK_ALLOW_PRIVATE"
                    "=true to allow it")
    return addresses[0]


@dataclass(frozen=True, slots=True)
class WebhookPost:
    """One document for one campaign URL."""

    tenant: str
    campaign: str
    url: str
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """Counters since the sender started: posts answered 2xx (``sent``), given up after the
    last attempt or on a final status (``failed``), refused for their address (``refused``),
    dropped because the queue was full (``dropped``), retried attempts (``retries``), and the
    posts waiting (``queued``)."""

    sent: int = 0
    failed: int = 0
    refused: int = 0
    dropped: int = 0
    retries: int = 0
    queued: int = 0


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


class _Retryable(Exception):
    pass


class WebhookSender:
    """Posts :class:`WebhookPost` s from a background thread (see the module docstring).

    Args:
        key: the deployment key campaign secrets derive from.
        allow_private: post to loopback/link-local/private addresses too.
        max_queue: posts waiting before new ones are dropped.
        timeout_s: connect and read timeout of each attempt.
        attempts: tries per post (>= 1).
        backoff_s: wait before the second try, doubled for each next one.
    """

    def __init__(self, key: bytes, *, allow_private: bool = False, max_queue: int = 1000,
                 timeout_s: float = 5.0, attempts: int = 3, backoff_s: float = 0.5,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self._key = key
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._ssl = ssl_context or ssl.create_default_context()
        self._queue: queue.Queue[WebhookPost | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "failed": 0, "refused": 0, "dropped": 0, "retries": 0}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="campaign-webhooks",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSender:
        """A sender keyed by the deployment's secret, with its address policy."""
        from drivetrain.cloud.infra.bootstrap import resolve_token_key

        return cls(resolve_token_key(settings).secret,
                   allow_private=settings.campaign_webhook_allow_private)

    def secret(self, tenant: str, campaign: str) -> str:
        return webhook_secret(self._key, tenant, campaign)

    def submit(self, post: WebhookPost) -> bool:
        """Queue ``post``; False (and counted as dropped) when the queue is full or closed."""
        if not self._stopping.is_set():
            try:
                self._queue.put_nowait(post)
                return True
            except queue.Full:
                pass
        self._count("dropped")
        _log.warning("campaign %s webhook post dropped: queue full", post.campaign)
        return False

    def stats(self) -> WebhookStats:
        with self._lock:
            return WebhookStats(**self._counts, queued=self._queue.qsize())

    def join(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued post is done; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return self._queue.unfinished_tasks == 0

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (queued posts not yet tried are abandoned)."""
        self._stopping.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout_s)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _drain(self) -> None:
        while not self._stopping.is_set():
            post = self._queue.get()
            try:
                if post is not None:
                    self._deliver(post)
            except Exception:  # noqa: BLE001 (the thread must outlive any one post)
                self._count("failed")
                _log.exception("campaign %s webhook post failed", getattr(post, "campaign", "?"))
            finally:
                self._queue.task_done()

    def _deliver(self, post: WebhookPost) -> None:
        for attempt in range(self.attempts):
            if attempt:
                self._count("retries")
                if self._stopping.wait(self.backoff_s * 2 ** (attempt - 1)):
                    return
            try:
                status = self._post_once(post)
            except RefusedAddressError as e:
                self._count("refused")
                _log.warning("campaign %s webhook refused: %s", post.campaign, e)
                return
            except _Retryable as e:
                _log.info("campaign %s webhook attempt %d failed: %s", post.campaign,
                          attempt + 1, e)
                continue
            if 200 <= status < 300:
                self._count("sent")
            else:
                self._count("failed")
                _log.warning("campaign %s webhook answered %d", post.campaign, status)
            return
        self._count("failed")
        _log.warning("campaign %s webhook gave up after %d attempts", post.campaign,
                     self.attempts)

    def _post_once(self, post: WebhookPost) -> int:
        parts = urlsplit(post.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = vetted_address(host, port, allow_private=self.allow_private)
        connection: http.client.HTTPConnection = (
            _PinnedHTTPS(host, port, address, self.timeout_s, self._ssl)
            if parts.scheme == "https" else _PinnedHTTP(host, port, address, self.timeout_s))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self.secret(post.tenant, post.campaign), post.body),
            CAMPAIGN_HEADER: post.campaign,
            "User-Agent": "drivetrain-webhooks",
        }
        try:
            connection.request("POST", target, body=post.body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)
        except (OSError, http.client.HTTPException) as e:
            raise _Retryable(str(e)) from e
        finally:
            connection.close()
        if response.status >= 500 or response.status == 429:
            raise _Retryable(f"answered {response.status}")
        return response.status
