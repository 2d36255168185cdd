"""Topic names, topic filters and the ``dt/v1/{vin}/...`` scheme — pure functions, no I/O.

The rules are those of MQTT 5 (OASIS MQTT Version 5.0, §4.7 "Topic Names and Topic Filters"
and §4.8.2 "Shared Subscriptions"), so that the in-process transport and a real broker agree on
what matches what:

- levels are separated by ``/``; a level may be empty (``a//b`` has three levels);
- ``+`` matches exactly one level and must occupy the whole level (§4.7.1.2);
- ``#`` matches the parent level and any number of child levels; it must be the whole last level
  of a filter (§4.7.1.1);
- a filter starting with a wildcard does not match a topic starting with ``$`` (§4.7.2);
- ``$share/{group}/{filter}`` is a shared subscription: each message matching ``filter`` goes to
  one member of ``group`` (§4.8.2);
- names and filters are non-empty UTF-8 of at most 65 535 bytes without U+0000 (§1.5.4).

Drivetrain's own topics live under ``dt/v1/{vin}/{channel}[/...]``: the version level lets the
wire format change without breaking vehicles already in the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivetrain.core.errors import InvalidTopicError
from drivetrain.core.vin import is_vin

#: Root of every Drivetrain topic; the second level is the topic-scheme version.
TOPIC_ROOT = "dt/v1"

#: Channels Drivetrain uses below a vehicle (more may be added; any valid level is accepted).
TELEMETRY = "telemetry"
EVENTS = "events"
STATE_REPORTED = "state/reported"
STATE_DESIRED = "state/desired"
COMMANDS = "commands"
ACK = "ack"
CAMPAIGNS = "campaigns"
DECODER = "decoder"
ENTITLEMENTS = "entitlements"

SHARE_PREFIX = "$share/"
_MAX_TOPIC_BYTES = 65_535

# A channel level of the dt/v1 scheme: lower-case words, digits, '-' and '_'.
_LEVEL_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _check_common(text: str, kind: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{kind} must be a str, got {type(text).__name__}")
    if not text:
        raise InvalidTopicError(f"{kind} {text!r} is empty; expected at least one character")
    if "\x00" in text:
        raise InvalidTopicError(f"{kind} {text!r} contains U+0000, which MQTT forbids")
    if len(text.encode("utf-8")) > _MAX_TOPIC_BYTES:
        raise InvalidTopicError(
            f"{kind} {text[:40]!r}... is {len(text.encode('utf-8'))} bytes long; "
            f"expected at most {_MAX_TOPIC_BYTES}"
        )


def validate_topic_name(topic: str) -> str:
    """Return ``topic`` if it is a valid MQTT topic name (what a message is published to).

    Raises:
        InvalidTopicError: empty, too long, contains U+0000 or a wildcard ``+``/``#``.
    """
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise InvalidTopicError(
            f"topic {topic!r} contains a wildcard ('+' or '#'); wildcards are only allowed in "
            "subscription filters"
        )
    return topic


def validate_topic_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if it is a valid MQTT topic filter (plain or ``$share/...``).

    Raises:
        InvalidTopicError: a misplaced wildcard, a malformed shared subscription, or any
            topic-name rule broken.
    """
    _check_common(topic_filter, "topic filter")
    if topic_filter.startswith(SHARE_PREFIX):
        split_shared_filter(topic_filter)
        return topic_filter
    _check_filter_levels(topic_filter, topic_filter)
    return topic_filter


def _check_filter_levels(topic_filter: str, shown: str) -> None:
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise InvalidTopicError(
                f"topic filter {shown!r}: '#' must be the whole last level (level {i + 1} is "
                f"{level!r})"
            )
        if "+" in level and level != "+":
            raise InvalidTopicError(
                f"topic filter {shown!r}: '+' must be a whole level (level {i + 1} is {level!r})"
            )


def split_shared_filter(topic_filter: str) -> tuple[str | None, str]:
    """Split a filter into ``(share group, plain filter)``; the group is None when not shared.

    Raises:
        InvalidTopicError: ``$share/`` without a valid group name and a valid filter after it.
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    rest = topic_filter[len(SHARE_PREFIX) :]
    group, sep, plain = rest.partition("/")
    if not group or "+" in group or "#" in group:
        raise InvalidTopicError(
            f"shared subscription {topic_filter!r}: expected '$share/{{group}}/{{filter}}' with a "
            f"non-empty group name without wildcards, got group {group!r}"
        )
    if not sep or not plain:
        raise InvalidTopicError(
            f"shared subscription {topic_filter!r}: expected a topic filter after the group name"
        )
    _check_common(plain, "topic filter")
    _check_filter_levels(plain, topic_filter)
    return group, plain


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True when the plain (non-shared) ``topic_filter`` matches the topic name ``topic``.

    Both arguments are assumed valid (see ``validate_topic_filter``/``validate_topic_name``).
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT 5 §4.7.2: wildcards at the first level never match '$' topics
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True  # matches the parent level too: 'a/#' matches 'a' (§4.7.1.1)
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


# --- the dt/v1/{vin}/... scheme ------------------------------------------------------------------


def validate_vin(vin: str) -> str:
    """Return ``vin`` if it is a vehicle identification number as ISO 3779 writes it.

    Raises:
        InvalidTopicError: not 17 characters of ``0-9`` and ``A-Z`` without I, O and Q.
    """
    if not isinstance(vin, str):
        raise TypeError(f"vin must be a str, got {type(vin).__name__}")
    if not is_vin(vin):
        raise InvalidTopicError(
            f"VIN {vin!r} is not valid: expected 17 characters from 0-9 and A-Z without I, O, Q "
            "(ISO 3779)"
        )
    return vin


def _channel_levels(levels: tuple[str, ...], *, allow_wildcards: bool) -> list[str]:
    if not levels:
        raise InvalidTopicError(
            f"a vehicle topic needs a channel after '{TOPIC_ROOT}/{{vin}}/', e.g. {TELEMETRY!r}"
        )
    out: list[str] = []
    for level_group in levels:
        for level in level_group.split("/"):
            if allow_wildcards and level in ("+", "#"):
                out.append(level)
            elif not _LEVEL_RE.fullmatch(level):
                raise InvalidTopicError(
                    f"topic level {level!r} (in {'/'.join(levels)!r}) is not valid: expected "
                    "1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
                )
            else:
                out.append(level)
    if "#" in out[:-1]:
        raise InvalidTopicError(f"'#' must be the last level, got {'/'.join(levels)!r}")
    return out


def vehicle_topic(vin: str, *channel: str) -> str:
    """The topic name ``dt/v1/{vin}/{channel...}``; e.g. ``vehicle_topic(vin, TELEMETRY)``.

    ``channel`` levels may be given one per argument or joined with ``/``.

    Raises:
        InvalidTopicError: an invalid VIN, no channel, or a level outside ``[a-z0-9_-]``.
    """
    levels = _channel_levels(channel, allow_wildcards=False)
    return "/".join([TOPIC_ROOT, validate_vin(vin), *levels])


def vehicle_filter(*channel: str, vin: str | None = None) -> str:
    """A topic filter over vehicle topics; ``vin=None`` means every vehicle (``+``).

    ``vehicle_filter(TELEMETRY)`` is ``dt/v1/+/telemetry``; channel levels may be ``+`` or a
    final ``#``.

    Raises:
        InvalidTopicError: an invalid VIN, no channel, or an invalid level.
    """
    levels = _channel_levels(channel, allow_wildcards=True)
    vin_level = "+" if vin is None else validate_vin(vin)
    return "/".join([TOPIC_ROOT, vin_level, *levels])


def shared_filter(group: str, topic_filter: str) -> str:
    """The shared subscription ``$share/{group}/{topic_filter}`` (one member gets each message).

    Raises:
        InvalidTopicError: an invalid group name or filter.
    """
    return validate_topic_filter(f"{SHARE_PREFIX}{group}/{topic_filter}")


@dataclass(frozen=True)
class VehicleTopic:
    """A parsed ``dt/v1/{vin}/{channel}`` topic name."""

    vin: str
    channel: str  # one or more levels joined with '/', e.g. 'telemetry' or 'state/reported'


def parse_vehicle_topic(topic: str) -> VehicleTopic:
    """Split a ``dt/v1/{vin}/{channel...}`` topic name into its VIN and channel.

    Raises:
        InvalidTopicError: not under ``dt/v1``, an invalid VIN or channel level.
    """
    validate_topic_name(topic)
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        raise InvalidTopicError(
            f"topic {topic!r} is not a vehicle topic: expected '{prefix}{{vin}}/...'"
        )
    vin, _, channel = topic[len(prefix) :].partition("/")
    validate_vin(vin)
    levels = _channel_levels((channel,), allow_wildcards=False) if channel else []
    if not levels:
        raise InvalidTopicError(f"topic {topic!r} has no channel after the VIN")
    return VehicleTopic(vin=vin, channel="/".join(levels))
