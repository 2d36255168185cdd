"""The backbone's streams and the mapping between MQTT-style topics and NATS subjects.

The backbone between ingest and its consumers is a set of durable JetStream streams, one per
domain. Topics keep the platform's MQTT form (``dt/platform/v1/twins``); on NATS they are
subjects (``dt.platform.v1.twins``), and topic filters translate ``+`` to ``*`` and ``#`` to
``>``. This module is pure: no connection, no I/O.

A **namespace** (the ``backbone_namespace`` setting) lets several deployments or test runs
share one JetStream without seeing each other's messages: in namespace ``eu1`` the stream
``telemetry-validated`` is ``eu1-telemetry-validated`` and stores ``eu1.dt.platform.v1.telemetry``.
The empty namespace keeps the plain names. The code above the transport never sees it: topics
stay ``dt/platform/v1/...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from drivetrain.core.errors import ConfigurationError, InvalidTopicError

#: Topic root of the backbone's per-domain streams.
BACKBONE_ROOT: Final = "dt/platform/v1"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One durable stream of the backbone.

    Attributes:
        name: the JetStream stream name (``telemetry-validated``).
        subject: the one subject pattern it stores (``dt.platform.v1.telemetry``).
        description: what it carries, in words.
    """

    name: str
    subject: str
    description: str


#: The domains with a stream of their own; every other domain's status events share
#: ``platform-status``.
DOMAIN_STREAMS: Final = {
    "telemetry": StreamSpec(
        "telemetry-validated", "dt.platform.v1.telemetry",
        "telemetry batches that passed validation and were committed to the lake",
    ),
    "security": StreamSpec(
        "security-events", "dt.platform.v1.security",
        "security events reported by vehicles and committed by ingest",
    ),
    "twins": StreamSpec(
        "twin-reported", "dt.platform.v1.twins",
        "committed changes of the digital twins (reported, desired, metadata)",
    ),
}
PLATFORM_STREAM: Final = StreamSpec(
    "platform-status", "dt.platform.v1.status.>",
    "committed status changes of the other domains (jobs, campaigns, commerce...)",
)
BACKBONE_STREAMS: Final = (*DOMAIN_STREAMS.values(), PLATFORM_STREAM)

#: Longest namespace: it prefixes stream names, which name folders on every JetStream node.
NAMESPACE_MAX: Final = 32
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_namespace(namespace: str, *, setting: str = "backbone_namespace") -> str:
    """``namespace`` if it can prefix the backbone's stream names and subjects ("" included).

    It must be one subject token that is also a valid stream name: letters, digits, ``-`` and
    ``_``, starting with a letter or a digit (so never ``$``-reserved or ``_INBOX``), at most
    :data:`NAMESPACE_MAX` characters.

    Raises:
        ConfigurationError: anything else, naming ``setting``.
    """
    if namespace == "":
        return namespace
    if len(namespace) > NAMESPACE_MAX:
        raise ConfigurationError(
            f"{setting} {namespace!r}: at most {NAMESPACE_MAX} characters, got {len(namespace)}")
    if not _NAMESPACE.fullmatch(namespace):
        raise ConfigurationError(
            f"{setting} {namespace!r}: use letters, digits, '-' and '_', starting with a letter "
            "or a digit (it prefixes NATS stream names and subjects, where '.', '*', '>', "
            "whitespace and '$' are not allowed)")
    return namespace


def namespaced(spec: StreamSpec, namespace: str) -> StreamSpec:
    """``spec`` in ``namespace``: name ``{namespace}-{name}``, subject ``{namespace}.{subject}``
    (``spec`` itself for the empty namespace).

    Raises:
        ConfigurationError: ``namespace`` is not valid (:func:`check_namespace`).
    """
    if not check_namespace(namespace):
        return spec
    return replace(spec, name=f"{namespace}-{spec.name}", subject=f"{namespace}.{spec.subject}")


def backbone_topic(domain: str) -> str:
    """The topic a domain's status events travel on over the backbone.

    Raises:
        InvalidTopicError: ``domain`` is empty or holds ``/``, ``+``, ``#``, ``.``, ``*``, ``>``
            or whitespace.
    """
    if not domain or any(c in domain for c in "/+#.*> \t\r\n"):
        raise InvalidTopicError(f"domain {domain!r} cannot be a topic level")
    if domain in DOMAIN_STREAMS:
        return f"{BACKBONE_ROOT}/{domain}"
    return f"{BACKBONE_ROOT}/status/{domain}"


def topic_to_subject(topic: str) -> str:
    """The NATS subject of an MQTT-style topic name or filter (``+`` → ``*``, ``#`` → ``>``).

    Raises:
        InvalidTopicError: a level is empty, holds ``.``, ``*``, ``>`` or whitespace, or uses
            a wildcard other than a whole level (``#`` only last).
    """
    levels = topic.split("/")
    out = []
    for i, level in enumerate(levels):
        if level == "+":
            out.append("*")
        elif level == "#":
            if i != len(levels) - 1:
                raise InvalidTopicError(f"topic {topic!r}: '#' must be the last level")
            out.append(">")
        elif not level or any(c in level for c in ".*>+# \t\r\n"):
            raise InvalidTopicError(
                f"topic {topic!r}: level {level!r} cannot be a NATS subject token"
            )
        else:
            out.append(level)
    return ".".join(out)


def subject_to_topic(subject: str) -> str:
    """The MQTT-style topic of a NATS subject (the inverse of :func:`topic_to_subject`)."""
    return "/".join("+" if t == "*" else "#" if t == ">" else t for t in subject.split("."))


def subject_covers(pattern: str, subject: str) -> bool:
    """True when every subject matched by ``subject`` is also matched by ``pattern``
    (both may hold ``*`` and ``>``)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have):
            return False
        if have[i] == ">":
            return False
        if token != "*" and (have[i] == "*" or token != have[i]):
            return False
    return len(have) == len(want)


def subjects_overlap(a: str, b: str) -> bool:
    """True when some subject is matched by both patterns."""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == ">" or y == ">":
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != "*" and y != "*" and x != y:
            return False
    return True


@dataclass(frozen=True, slots=True)
class ConsumerTarget:
    """Where one subscription reads: a stream, and the filter it needs there (None: all)."""

    stream: str
    filter_subject: str | None


def consumer_targets(subject_filter: str, streams: tuple[StreamSpec, ...]) -> list[ConsumerTarget]:
    """The streams a subscription to ``subject_filter`` reads, with their filters.

    A JetStream consumer lives on one stream, so a filter that spans several streams
    (``dt.platform.v1.>``) becomes one consumer per stream.

    Raises:
        InvalidTopicError: no stream stores subjects of the filter, or the filter covers only
            part of a stream in a way one consumer filter cannot say.
    """
    targets = []
    for spec in streams:
        if not subjects_overlap(subject_filter, spec.subject):
            continue
        if subject_covers(spec.subject, subject_filter):
            targets.append(ConsumerTarget(spec.name, subject_filter))
        elif subject_covers(subject_filter, spec.subject):
            targets.append(ConsumerTarget(spec.name, None))
        else:
            raise InvalidTopicError(
                f"filter {subject_filter!r} covers part of stream {spec.name!r} "
                f"({spec.subject}); subscribe with a narrower or a wider filter"
            )
    if not targets:
        names = ", ".join(f"{s.name} ({s.subject})" for s in streams)
        raise InvalidTopicError(f"no backbone stream stores {subject_filter!r}; streams: {names}")
    return targets
