"""A collection campaign as an operator writes it, checked — and the bodies vehicles receive.

Pure: values in, values out, typed errors; the catalog is passed in.

A campaign has two parts:

* the **vehicle document** — exactly the JSON format the edge agent installs and
  ``drivetrain edge check-campaign`` checks (``drivetrain.edge.campaigns``): signals, periods,
  triggers, priority. It is checked with the edge's own parser against the tenant's catalog,
  so a campaign a vehicle would refuse is refused here, naming the field. Its ``version`` and
  ``status`` are the platform's to set (each send gets a fresh wire version), its
  ``expires_ns`` is the campaign's end. The FleetWise-style fields it may carry are checked
  here too: ``upload`` (upload conditions per data partition), ``max_samples_per_signal`` and
  ``dtcs_on_trigger``.
* the **cloud fields** — whom (a fleet query, or VINs, and a cap on vehicles), when (start and
  end), extra ``dimensions`` (twin fields stamped on the campaign's rows) and ``destinations``
  beyond the lake (an MQTT topic or a webhook receiving the campaign's data).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from drivetrain.core.errors import (
    BadInputError,
    CampaignFormatError,
    InvalidTopicError,
    UnknownSignalError,
)
from drivetrain.core.transport import validate_topic_name
from drivetrain.core.vss import Catalog
from drivetrain.edge import Campaign

#: Fields of the vehicle document the platform sets itself (ignored when given).
PLATFORM_FIELDS: Final = frozenset({"version", "status", "expires_ns"})
#: Twin fields a campaign may stamp on its rows: metadata, or an ECU's software/hardware.
DIMENSION = re.compile(r"(vin|model|region|owner|(software|hardware)\.[A-Za-z0-9_.-]{1,64})")
MAX_DIMENSIONS: Final = 16
MAX_DESTINATIONS: Final = 8
MAX_VEHICLES: Final = 10_000_000
MAX_EXPLICIT_VINS: Final = 10_000
DESTINATION_TOPIC_ROOT: Final = "dt/campaigns/"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the campaign's data also goes: an MQTT topic (under ``dt/campaigns/``) or an
    HTTPS (or local HTTP) webhook receiving JSON batches of the campaign's rows."""

    type: Literal["mqtt", "webhook"]
    target: str

    def to_dict(self) -> dict[str, str]:
        key = "topic" if self.type == "mqtt" else "url"
        return {"type": self.type, key: self.target}


@dataclass(frozen=True, slots=True)
class Targeting:
    """Whom a campaign collects from: a fleet query (evaluated continuously) or named VINs,
    at most ``max_vehicles`` of them (None: no cap)."""

    query: str | None = None
    vins: tuple[str, ...] | None = None
    max_vehicles: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "vins": None if self.vins is None else list(self.vins),
                "max_vehicles": self.max_vehicles}


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A checked campaign: its vehicle document and its cloud fields."""

    campaign_id: str
    document: Mapping[str, Any]
    targeting: Targeting
    start_at: datetime | None = None
    end_at: datetime | None = None
    dimensions: tuple[str, ...] = ()
    destinations: tuple[Destination, ...] = ()
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The definition as stored and returned by the API (the input shape)."""
        return {
            "campaign": dict(self.document),
            "targeting": self.targeting.to_dict(),
            "start_at": None if self.start_at is None else self.start_at.isoformat(),
            "end_at": None if self.end_at is None else self.end_at.isoformat(),
            "dimensions": list(self.dimensions),
            "destinations": [d.to_dict() for d in self.destinations],
            "description": self.description,
        }

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> CampaignSpec:
        """A stored ``to_dict`` back as a spec (it was checked when written; the tenant's
        catalog may have moved on since, so it is not checked again)."""
        targeting = data["targeting"]
        vins = targeting["vins"]
        return cls(
            campaign_id=str(data["campaign"]["id"]),
            document=data["campaign"],
            targeting=Targeting(targeting["query"], None if vins is None else tuple(vins),
                                targeting["max_vehicles"]),
            start_at=_when(data["start_at"], "start_at"),
            end_at=_when(data["end_at"], "end_at"),
            dimensions=tuple(data["dimensions"]),
            destinations=tuple(Destination(d["type"], d.get("topic") or d["url"])
                               for d in data["destinations"]),
            description=data["description"],
        )

    def wire_body(self, version: int, *, cancelled: bool = False) -> dict[str, Any]:
        """The vehicle document at wire ``version`` (``cancelled``: the withdrawal)."""
        body = dict(self.document)
        body["version"] = version
        body["status"] = "cancelled" if cancelled else "active"
        body["expires_ns"] = None if self.end_at is None else _ns(self.end_at)
        return body


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _when(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadInputError(f"campaign: field {name!r} is {value!r}; expected an ISO 8601 "
                                "time such as 2026-05-01T00:00:00Z") from None
    else:
        raise BadInputError(f"campaign: field {name!r} is {value!r}; expected an ISO 8601 time")
    if moment.tzinfo is None:
        raise BadInputError(f"campaign: field {name!r} ({value}) has no timezone; add Z or "
                            "an offset")
    return moment.astimezone(UTC)


def check_document(document: Any, catalog: Catalog) -> dict[str, Any]:
    """The vehicle document checked as a vehicle checks it (edge parser, tenant catalog) plus
    the FleetWise-style fields; returns it without the platform's fields.

    Raises:
        CampaignFormatError: the message names the field (an unknown path, a bad trigger
            expression, an impossible period, a bad upload partition...).
    """
    if not isinstance(document, Mapping):
        raise CampaignFormatError(f"campaign: expected a JSON object, got {document!r}")
    probe = {k: v for k, v in document.items() if k not in PLATFORM_FIELDS}
    # The edge parser checks ``upload`` (partitions) and ``dtcs_on_trigger`` too.
    Campaign.from_dict({**probe, "version": 1}, catalog)
    _check_sample_cap(probe.get("max_samples_per_signal"), catalog)
    return probe


def _selectors(value: Any, where: str, catalog: Catalog) -> list[str]:
    if not isinstance(value, list) or not value:
        raise CampaignFormatError(f"{where} is {value!r}; expected a non-empty list of VSS "
                                  "paths or 'Branch.*' selectors")
    for selector in value:
        if not isinstance(selector, str) or not selector:
            raise CampaignFormatError(f"{where}: entry {selector!r} is not a selector")
        if selector == "*":
            continue
        if selector.endswith(".*"):
            if not any(p.startswith(selector[:-1]) for p in catalog.paths):
                raise CampaignFormatError(f"{where}: {selector!r} selects no signal of the "
                                          "catalog")
            continue
        try:
            catalog.get(selector)
        except UnknownSignalError as e:
            raise CampaignFormatError(f"{where}: {e}") from None
    return value


def _check_sample_cap(value: Any, catalog: Catalog) -> None:
    """``max_samples_per_signal``: a number (every signal) or selector → number."""
    if value is None:
        return
    where = "campaign: field 'max_samples_per_signal'"
    caps = value if isinstance(value, Mapping) else {"*": value}
    if isinstance(value, Mapping):
        _selectors(list(value), where, catalog)
    for selector, cap in caps.items():
        if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 10_000_000:
            raise CampaignFormatError(f"{where}: {selector!r} is {cap!r}; expected a whole "
                                      "number from 1 to 10000000")


def _dimensions(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_DIMENSIONS:
        raise BadInputError(f"campaign: field 'dimensions' is {value!r}; expected a list of at "
                            f"most {MAX_DIMENSIONS} twin fields")
    for item in value:
        if not isinstance(item, str) or not DIMENSION.fullmatch(item):
            raise BadInputError(
                f"campaign: field 'dimensions': {item!r} is not a twin field; expected vin, "
                "model, region, owner, software.<ECU> or hardware.<ECU>"
            )
    return tuple(dict.fromkeys(value))


def _destination(value: Any, index: int) -> Destination:
    where = f"campaign: field 'destinations': entry {index + 1}"
    if not isinstance(value, Mapping):
        raise BadInputError(f"{where}: expected an object, got {value!r}")
    kind = value.get("type")
    if kind == "mqtt":
        topic = value.get("topic")
        if not isinstance(topic, str) or not topic.startswith(DESTINATION_TOPIC_ROOT):
            raise BadInputError(f"{where}: field 'topic' is {topic!r}; expected a topic under "
                                f"{DESTINATION_TOPIC_ROOT!r} (e.g. 'dt/campaigns/harsh-brakes')")
        try:
            validate_topic_name(topic)
        except InvalidTopicError as e:
            raise BadInputError(f"{where}: {e}") from e
        return Destination("mqtt", topic)
    if kind == "webhook":
        url = value.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            raise BadInputError(f"{where}: field 'url' is {url!r}; expected an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise BadInputError(f"{where}: field 'url' {url!r} is plain http; a webhook outside "
                                "this host must use https://")
        return Destination("webhook", url)  # type: ignore[arg-type]
    raise BadInputError(f"{where}: field 'type' is {kind!r}; expected 'mqtt' or 'webhook'")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _targeting(value: Any) -> Targeting:
    if value is None:
        raise BadInputError("campaign: field 'targeting' is missing; give a fleet query "
                            "(\"\" selects every vehicle) or VINs")
    if not isinstance(value, Mapping):
        raise BadInputError(f"campaign: field 'targeting' is {value!r}; expected an object")
    unknown = sorted(set(value) - {"query", "vins", "max_vehicles"})
    if unknown:
        raise BadInputError(f"campaign: field 'targeting': unknown fields {unknown}; expected "
                            "query, vins, max_vehicles")
    query, vins, cap = value.get("query"), value.get("vins"), value.get("max_vehicles")
    if query is not None and (not isinstance(query, str) or len(query) > 4000):
        raise BadInputError(f"campaign: field 'targeting.query' is {query!r}; expected a fleet "
                            "query of at most 4000 characters")
    if vins is not None:
        if (not isinstance(vins, list) or not vins or len(vins) > MAX_EXPLICIT_VINS
                or not all(isinstance(v, str) for v in vins)):
            raise BadInputError(f"campaign: field 'targeting.vins' is {vins!r}; expected 1 to "
                                f"{MAX_EXPLICIT_VINS} VINs")
        vins = tuple(dict.fromkeys(vins))
    if query is None and vins is None:
        raise BadInputError("campaign: field 'targeting' names no vehicles; give 'query' "
                            "(\"\" selects every vehicle) or 'vins'")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                            or not 1 <= cap <= MAX_VEHICLES):
        raise BadInputError(f"campaign: field 'targeting.max_vehicles' is {cap!r}; expected a "
                            f"whole number from 1 to {MAX_VEHICLES}")
    return Targeting(query, vins, cap)


_SPEC_FIELDS: Final = frozenset({"campaign", "targeting", "start_at", "end_at", "dimensions",
                                 "destinations", "description"})


def parse_spec(data: Any, catalog: Catalog, *, now: datetime) -> CampaignSpec:
    """Check a campaign definition (the API's body, the CLI's file) against ``catalog``.

    Raises:
        CampaignFormatError: the vehicle document is one a vehicle would refuse.
        BadInputError: a cloud field is wrong: an unknown field, no targets, a bad cap, an
            impossible period (end before start, end already past), a bad dimension or
            destination. Every message names the field.
    """
    if not isinstance(data, Mapping):
        raise BadInputError(f"campaign definition: expected a JSON object, got {data!r}")
    unknown = sorted(set(data) - _SPEC_FIELDS)
    if unknown:
        raise BadInputError(f"campaign definition: unknown fields {unknown}; expected "
                            f"{sorted(_SPEC_FIELDS)}")
    document = check_document(data.get("campaign"), catalog)
    start_at, end_at = _when(data.get("start_at"), "start_at"), _when(data.get("end_at"), "end_at")
    if end_at is not None and end_at <= now:
        raise BadInputError(f"campaign: field 'end_at' {end_at.isoformat()} is in the past; a "
                            "campaign must end after it is written")
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise BadInputError(f"campaign: field 'end_at' {end_at.isoformat()} is not after "
                            f"'start_at' {start_at.isoformat()}")
    raw_destinations = data.get("destinations") or []
    if not isinstance(raw_destinations, list) or len(raw_destinations) > MAX_DESTINATIONS:
        raise BadInputError(f"campaign: field 'destinations' is {raw_destinations!r}; expected "
                            f"a list of at most {MAX_DESTINATIONS}")
    description = data.get("description") or ""
    if not isinstance(description, str) or len(description) > 2000:
        raise BadInputError("campaign: field 'description' must be text of at most 2000 "
                            "characters")
    return CampaignSpec(
        campaign_id=str(document["id"]),
        document=document,
        targeting=_targeting(data.get("targeting")),
        start_at=start_at,
        end_at=end_at,
        dimensions=_dimensions(data.get("dimensions")),
        destinations=tuple(_destination(d, i) for i, d in enumerate(raw_destinations)),
        description=description,
    )
