"""What a campaign asks of its data beyond the lake: ``dimensions`` stamped on its rows and
``destinations`` that stream them (docs/campaigns.md).

For each telemetry batch that names a campaign (its signed ``campaign`` header), the campaign's
version in force says:

* ``dimensions`` — twin fields (``model``, ``region``, ``owner``, ``software.<ECU>``,
  ``hardware.<ECU>``) read from the vehicle's twin when the batch is ingested and stamped on
  each of the batch's lake rows as one JSON object (the lake's ``dimensions`` column). The
  lake never holds VINs, so a ``vin`` dimension reads as null (the ``vehicle`` column is the
  pseudonym).
* MQTT ``destinations`` — the batch's accepted samples are published, after the micro-batch
  is committed, as one JSON message on ``dt/campaigns/{tenant}/{rest of the topic}``: the
  tenant is inserted after ``dt/campaigns/`` so two tenants naming the same topic never share
  a stream. Only that campaign's samples go there. Streaming is at most once: a message the
  broker refuses is logged and counted, never retried (the lake has every row).
* webhook ``destinations`` — the same document is POSTed to each URL, signed, from a
  background sender (:mod:`.webhooks`).

Campaign definitions are cached per (tenant, campaign) for a few seconds.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import Vehicle
from drivetrain.core.errors import NotFoundError

#: Root every MQTT destination lives under (``cloud.campaigns.definition``).
TOPIC_ROOT: Final = "dt/campaigns/"
#: Samples per streamed message (a batch with more is split).
MAX_SAMPLES_PER_MESSAGE: Final = 5_000
#: Message format of a streamed batch.
STREAM_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class CampaignOutputs:
    """A campaign's dimensions, the MQTT topics its data streams to (tenant-scoped) and its
    webhook URLs."""

    dimensions: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()


def tenant_topic(tenant: str, topic: str) -> str:
    """``dt/campaigns/{tenant}/...`` for a destination topic ``dt/campaigns/...``."""
    if not topic.startswith(TOPIC_ROOT):
        raise ValueError(f"destination topic {topic!r} is not under {TOPIC_ROOT!r}")
    return f"{TOPIC_ROOT}{tenant}/{topic[len(TOPIC_ROOT):]}"


class CampaignOutputCache:
    """The outputs of each (tenant, campaign), asked of the campaigns domain at most once per
    ``ttl_s``."""

    def __init__(self, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, CampaignOutputs]] = {}

    def of(self, session: Session, tenant: str, campaign_id: str) -> CampaignOutputs:
        """The outputs of ``campaign_id``'s version in force (none for an unknown campaign or
        one not approved)."""
        now = self._clock()
        key = (tenant, campaign_id)
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        # Imported here: the campaigns domain reaches ingestion through the commands
        # dispatcher, so a module-level import would be circular.
        from drivetrain.cloud.campaigns import get_campaign

        try:
            view = get_campaign(session, campaign_id, tenant=tenant)
        except NotFoundError:
            found = CampaignOutputs()
        else:
            spec = view.current.spec
            found = CampaignOutputs() if view.version is None else CampaignOutputs(
                spec.dimensions,
                tuple(tenant_topic(tenant, d.target) for d in spec.destinations
                      if d.type == "mqtt"),
                tuple(d.target for d in spec.destinations if d.type == "webhook"),
            )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, found)
        return found


@dataclass
class BatchOutputs:
    """Per batch of a micro-batch: its dimensions stamp (JSON, or None), its topics and its
    webhook URLs."""

    stamps: list[str | None]
    topics: list[tuple[str, ...]]
    webhooks: list[tuple[str, ...]] = field(default_factory=list)


def batch_outputs(
    session: Session, cache: CampaignOutputCache, vehicles: Sequence[Vehicle],
    campaigns: Sequence[str | None],
) -> BatchOutputs:
    """The stamps and topics of each batch (``vehicles[i]`` sent ``campaigns[i]``)."""
    outputs = [
        CampaignOutputs() if c is None or c == "default" else cache.of(session, v.tenant, c)
        for v, c in zip(vehicles, campaigns, strict=True)
    ]
    stamps: list[str | None] = [None] * len(outputs)
    wanted: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, (vehicle, out) in enumerate(zip(vehicles, outputs, strict=True)):
        if out.dimensions:
            wanted.setdefault((vehicle.tenant, out.dimensions), []).append(i)
    if wanted:
        from drivetrain.cloud.twins import twin_fields  # see CampaignOutputCache.of

        for (tenant, dimensions), members in wanted.items():
            values = twin_fields(session, tenant, sorted({vehicles[i].vin for i in members}),
                                 dimensions)
            for i in members:
                found = values.get(vehicles[i].vin, {})
                stamps[i] = json.dumps({d: found.get(d) for d in dimensions},
                                       separators=(",", ":"))
    return BatchOutputs(stamps, [o.topics for o in outputs], [o.webhooks for o in outputs])


def stream_documents(
    *, tenant: str, campaign: str, batch_id: str, pseudonym: str,
    dimensions: str | None, paths: Sequence[str], path_id: npt.NDArray[np.int32],
    ts_ns: npt.NDArray[np.int64], value: npt.NDArray[np.float64],
    value_valid: npt.NDArray[np.bool_], text: Sequence[str | None],
) -> list[bytes]:
    """The JSON documents streaming one batch's accepted samples (more than one when the batch
    has over :data:`MAX_SAMPLES_PER_MESSAGE`)."""
    samples: list[dict[str, Any]] = []
    for i in range(len(ts_ns)):
        number = float(value[i]) if value_valid[i] else None
        samples.append({
            "path": paths[int(path_id[i])], "ts_ns": int(ts_ns[i]),
            "value": None if number is None or not math.isfinite(number) else number,
            "text": text[i],
        })
    documents: list[bytes] = []
    for start in range(0, len(samples), MAX_SAMPLES_PER_MESSAGE):
        body = json.dumps({
            "format": STREAM_FORMAT, "tenant": tenant, "campaign": campaign,
            "batch_id": batch_id, "vehicle": pseudonym,
            "dimensions": None if dimensions is None else json.loads(dimensions),
            "samples": samples[start : start + MAX_SAMPLES_PER_MESSAGE],
        }, separators=(",", ":")).encode()
        documents.append(body)
    return documents
