"""Routing the telemetry batches of a micro-batch: judge every sample at once, append the
accepted ones to the lake per (region, tenant), report the latest values to the twins, and
dead-letter the refused ones per batch and reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drivetrain.cloud.fleet import Vehicle
from drivetrain.cloud.ingest import assembly
from drivetrain.cloud.ingest.campaign_outputs import BatchOutputs, batch_outputs, stream_documents
from drivetrain.cloud.ingest.latest_values import LatestValues
from drivetrain.cloud.ingest.microbatch import MicroBatch
from drivetrain.cloud.ingest.reasons import (
    ACCEPTED_CODE,
    CODE_OUTCOMES,
    NOT_CONSENTED_CODE,
    SAMPLE_REASON_CODES,
    SampleReason,
)
from drivetrain.cloud.ingest.records import DeadLetterDraft
from drivetrain.cloud.ingest.results import AuthenticBatch, MessageResult
from drivetrain.cloud.ingest.validation import (
    SampleColumns,
    consent_array,
    explain_sample,
    judge_samples,
)
from drivetrain.cloud.ingest.vehicle_catalogs import VehicleCatalog, judge_custom
from drivetrain.cloud.ingest.webhooks import WebhookPost
from drivetrain.cloud.privacy import consent_map
from drivetrain.core import tracing
from drivetrain.core.vss import SignalSpec
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

#: Examples quoted in a sample-level dead letter's detail.
DETAIL_EXAMPLES: Final = 3
#: Refused samples kept in one sample-level dead letter (the others are counted).
MAX_KEPT_SAMPLES: Final = 10_000
#: Example sentences already written, by (id of the catalog entry, path, reason code,
#: value, text, (timestamp, window) where quoted): a fleet's refusals repeat. The entry is
#: kept with its sentence (its id alone could be a later entry's).
_SENTENCES: dict[tuple[object, ...], tuple[SignalSpec | None, str]] = {}
_MAX_SENTENCES: Final = 4_096  # kept small: a sentence quotes a text whole
#: Reasons whose explanation quotes the sample's timestamp.
_TIMED_CODES: Final = frozenset(
    SAMPLE_REASON_CODES[r] for r in ("timestamp_too_old", "timestamp_in_future")
)


def route_telemetry(mb: MicroBatch, batches: Sequence[AuthenticBatch]) -> None:
    """Judge, store and count the samples of ``batches`` (all telemetry)."""
    if not batches:
        return
    vehicles: list[Vehicle] = []
    index_of: dict[str, int] = {}
    for batch in batches:
        if batch.vehicle.vin not in index_of:
            index_of[batch.vehicle.vin] = len(vehicles)
            vehicles.append(batch.vehicle)
    vehicle_of_body = [index_of[b.vehicle.vin] for b in batches]
    bodies = [b.telemetry for b in batches if b.telemetry is not None]
    columns, body_index = assembly.join_bodies(bodies, vehicle_of_body)
    vins = [v.vin for v in vehicles]
    defaults = None if mb.policy is None else {
        v.vin: mb.policy.regions[v.region].default_consent
        for v in vehicles if v.region in mb.policy.regions
    }
    consent = consent_array(vins, consent_map(mb.session, vins, defaults))
    codes = judge_samples(columns, mb.paths, consent, mb.bounds)
    category = None
    checked: Sequence[VehicleCatalog | None] = [None] * len(vehicles)
    if mb.catalogs is not None:
        custom = judge_custom(mb.session, columns, codes, mb.paths, vehicles, consent,
                              mb.bounds, mb.catalogs)
        codes, category, checked = custom.codes, custom.category, custom.catalogs
    accepted = codes == ACCEPTED_CODE
    _count_not_consented(mb, columns, codes, category)
    columns = _minimise(mb, vehicles, columns, accepted)
    outputs = None if mb.outputs is None else batch_outputs(
        mb.session, mb.outputs, [b.vehicle for b in batches], [b.campaign for b in batches])
    _append_to_lake(mb, batches, vehicles, columns, body_index, accepted, category,
                    None if outputs is None else outputs.stamps)
    if outputs is not None and (any(outputs.topics) or any(outputs.webhooks)):
        _stream(mb, batches, columns, body_index, accepted, outputs)
    newest = assembly.latest_rows(columns, accepted, len(vins), len(mb.paths))
    if mb.pending is not None:
        mb.pending.add(columns, newest, vins)
    elif len(newest):
        reports = LatestValues(columns, newest, vins, mb.paths)
        if reports.values_count:
            with tracing.span("twins.update", {"drivetrain.twins.vehicles": reports.vehicles}):
                mb.reported.apply_reported(mb.session, reports)
    _refused_samples(mb, batches, columns, body_index, codes,
                     [checked[v] for v in vehicle_of_body])
    counts = assembly.count_outcomes(
        codes, body_index, [len(b) for b in bodies], vehicle_of_body, len(vehicles)
    )
    _tally_outcomes(mb, batches, vehicles, counts)


def _tally_outcomes(
    mb: MicroBatch, batches: Sequence[AuthenticBatch], vehicles: Sequence[Vehicle],
    counts: assembly.OutcomeCounts,
) -> None:
    """Count each vehicle's outcomes and record each batch's result. The count tables are
    read as Python lists once: a NumPy call per vehicle or per batch costs more than the
    few cells it looks at."""
    tally = mb.tally
    messages = counts.messages.tolist()
    for vehicle, samples, sent in zip(vehicles, counts.samples.tolist(), messages, strict=True):
        for code, n in enumerate(samples):
            if n:
                tally.count(vehicle.tenant, vehicle.vin, CODE_OUTCOMES[code], sent[code], n)
    for batch, row in zip(batches, counts.per_body.tolist(), strict=True):
        tally.result(
            batch.source,
            MessageResult(
                "stored",
                batch.vehicle.vin,
                batch.batch_id,
                accepted=row[ACCEPTED_CODE],
                refused={
                    CODE_OUTCOMES[c]: n
                    for c, n in enumerate(row)
                    if n and c != ACCEPTED_CODE and c != NOT_CONSENTED_CODE
                },
                not_consented=row[NOT_CONSENTED_CODE],
            ),
        )


def _minimise(
    mb: MicroBatch, vehicles: Sequence[Vehicle], columns: SampleColumns,
    accepted: npt.NDArray[np.bool_],
) -> SampleColumns:
    """``columns`` with every accepted value at its vehicle's region precision (the
    minimisation policy); values more precise than allowed are counted per region, and only
    the coarsened ones go on to the lake, the twins and the streams."""
    if mb.policy is None or not accepted.any():
        return columns
    value = columns.value
    paths = mb.paths.paths
    for region in sorted({v.region for v in vehicles}):
        policy = mb.policy.for_region(region)
        if not policy.precision:
            continue
        in_region = np.array([v.region == region for v in vehicles], np.bool_)
        rows = np.flatnonzero(accepted & in_region[columns.vehicle] & columns.value_valid)
        if not len(rows):
            continue
        coarse, changed = policy.coarsen(paths, columns.path_id[rows], value[rows])
        if changed:
            if value is columns.value:
                value = value.copy()
            value[rows] = coarse
            mb.tally.coarsened_by_region[region] += changed
    return columns if value is columns.value else replace(columns, value=value)


def _count_not_consented(
    mb: MicroBatch, columns: SampleColumns, codes: npt.NDArray[np.uint8],
    category: npt.NDArray[np.uint8] | None,
) -> None:
    """Tally the samples consent dropped, per privacy category (one bincount)."""
    dropped = codes == NOT_CONSENTED_CODE
    if not dropped.any():
        return
    categories = (mb.paths.category.take(columns.path_id[dropped]) if category is None
                  else category[dropped])
    for index, n in enumerate(np.bincount(categories, minlength=len(PRIVACY_CATEGORIES))):
        if n:
            mb.tally.not_consented_by_category[PRIVACY_CATEGORIES[index]] += int(n)


def _append_to_lake(
    mb: MicroBatch,
    batches: Sequence[AuthenticBatch],
    vehicles: Sequence[Vehicle],
    columns: SampleColumns,
    body_index: npt.NDArray[np.int32],
    accepted: npt.NDArray[np.bool_],
    category: npt.NDArray[np.uint8] | None,
    stamps: Sequence[str | None] | None,
) -> None:
    """One ``Lake.append`` per (region, tenant): each vehicle's rows under its own region."""
    if not accepted.any():
        return
    pseudonyms = mb.pseudonyms(vehicles)
    batch_ids = [b.batch_id for b in batches]
    groups: dict[tuple[str, str], int] = {}
    group_of = np.array([groups.setdefault((v.region, v.tenant), len(groups)) for v in vehicles],
                        np.int64)  # fmt: skip
    # The accepted rows of each group, in order: one stable sort, not a mask per group.
    every = len(groups) == 1 and bool(accepted.all())
    picked = np.flatnonzero(accepted)
    group_rows = group_of[columns.vehicle[picked]]
    ordered = picked[np.argsort(group_rows, kind="stable")]
    ends = np.cumsum(np.bincount(group_rows, minlength=len(groups)))
    # Looked at once here, not once per group (a micro-batch holds thousands of batches).
    campaigns = _any_set([b.campaign for b in batches])
    dimensions = None if stamps is None else _any_set(stamps)
    for (region, tenant), g in groups.items():
        rows = None if every else ordered[(ends[g - 1] if g else 0) : ends[g]]
        if rows is not None and not len(rows):
            continue
        table = assembly.lake_table(columns, rows, body_index, batch_ids, pseudonyms, mb.paths,
                                    campaigns=campaigns, category=category,
                                    dimensions=dimensions)
        with tracing.span("lake.write", {"drivetrain.region": region,
                                         "drivetrain.lake.rows": table.num_rows}):
            outcome = mb.lake.append(region, tenant, table)
        mb.tally.rows_written += outcome.rows_written
        mb.tally.rows_skipped += outcome.rows_skipped


def _any_set(per_batch: Sequence[str | None]) -> Sequence[str | None] | None:
    """``per_batch``, or None where every batch has none (the lake column is then all
    null)."""
    return per_batch if any(c is not None for c in per_batch) else None


def _stream(
    mb: MicroBatch,
    batches: Sequence[AuthenticBatch],
    columns: SampleColumns,
    body_index: npt.NDArray[np.int32],
    accepted: npt.NDArray[np.bool_],
    outputs: BatchOutputs,
) -> None:
    """Queue each streamed batch's accepted samples for its campaign's MQTT topics and
    webhook URLs."""
    paths = mb.paths.paths
    for b, batch in enumerate(batches):
        topics, hooks = outputs.topics[b], outputs.webhooks[b]
        if not topics and not hooks:
            continue
        rows = np.flatnonzero(accepted & (body_index == b))
        if not len(rows):
            continue
        assert batch.campaign is not None
        tenant = batch.vehicle.tenant
        documents = stream_documents(
            tenant=tenant, campaign=batch.campaign,
            batch_id=batch.batch_id, pseudonym=mb.pseudonyms([batch.vehicle])[0],
            dimensions=outputs.stamps[b], paths=paths, path_id=columns.path_id[rows],
            ts_ns=columns.ts_ns[rows], value=columns.value[rows],
            value_valid=columns.value_valid[rows],
            text=columns.text.take(rows).to_pylist(),
        )
        mb.streams.extend((topic, body) for body in documents for topic in topics)
        mb.webhooks.extend(WebhookPost(tenant, batch.campaign, url, body)
                           for body in documents for url in hooks)


def _refused_samples(
    mb: MicroBatch,
    batches: Sequence[AuthenticBatch],
    columns: SampleColumns,
    body_index: npt.NDArray[np.int32],
    codes: npt.NDArray[np.uint8],
    checked: Sequence[VehicleCatalog | None],
) -> None:
    """One sample-level dead letter per batch and reason, quoting a few examples; an unknown
    path's names the catalog its vehicle's samples were checked against (``checked``, per
    batch)."""
    paths = mb.paths
    groups = assembly.refused_groups(codes, body_index)
    if not groups:
        return
    payloads = assembly.refused_samples_ipc(
        columns, [rows[:MAX_KEPT_SAMPLES] for _, _, rows in groups], paths
    )
    # The quoted examples of every group, read out of the columns at once; a sentence is
    # written once per distinct (signal, reason, value, text) while it stays in _SENTENCES.
    quoted_rows = np.concatenate([rows[:DETAIL_EXAMPLES] for _, _, rows in groups])
    quoted_path = columns.path_id[quoted_rows].tolist()
    quoted_ts = columns.ts_ns[quoted_rows].tolist()
    quoted_value = [
        v if ok else None
        for v, ok in zip(columns.value[quoted_rows].tolist(),
                         columns.value_valid[quoted_rows].tolist(), strict=True)
    ]  # fmt: skip
    quoted_text: list[str | None] = (
        columns.text.take(pa.array(quoted_rows)).to_pylist()
        if columns.text_valid[quoted_rows].any()
        else [None] * len(quoted_rows)
    )
    at = 0
    for (body, code, rows), payload in zip(groups, payloads, strict=True):
        batch = batches[body]
        reason: SampleReason = CODE_OUTCOMES[code]  # type: ignore[assignment]
        examples = []
        for q in range(at, at + min(len(rows), DETAIL_EXAMPLES)):
            path_id, value, text = quoted_path[q], quoted_value[q], quoted_text[q]
            spec, path = paths.spec(path_id), paths.path(path_id)
            # -0.0 equals 0.0 as a key but is quoted as itself
            key = (id(spec), path, code, value if value or value is None else str(value), text,
                   (quoted_ts[q], mb.bounds) if code in _TIMED_CODES else None)  # fmt: skip
            known = _SENTENCES.get(key)
            if known is not None and known[0] is spec:
                sentence = known[1]
            else:
                sentence = explain_sample(spec, path, reason, ts_ns=quoted_ts[q], value=value,
                                          text=text, ts_bounds=mb.bounds)  # fmt: skip
                if len(_SENTENCES) >= _MAX_SENTENCES:
                    _SENTENCES.clear()
                _SENTENCES[key] = (spec, sentence)
            examples.append(sentence)
        at += len(examples)
        more = f" (and {len(rows) - len(examples)} more)" if len(rows) > len(examples) else ""
        against = checked[body]
        if reason == "unknown_path" and against is not None:
            more += f"; checked against {against.described}"
        if len(rows) > MAX_KEPT_SAMPLES:
            more += f"; the first {MAX_KEPT_SAMPLES} are kept"
        mb.tally.add_dead_letter(
            DeadLetterDraft(
                received_at=mb.received_at,
                vin=batch.vehicle.vin,
                tenant=batch.vehicle.tenant,
                topic=batch.topic,
                kind=batch.kind,
                batch_id=batch.batch_id,
                level="samples",
                reason=reason,
                detail=f"{len(rows)} {reason} sample(s): " + "; ".join(examples) + more,
                sample_count=len(rows),
                payload_format="arrow-ipc",
                payload=payload,
                replay_of=mb.replay_of,
                verified=True,
                region=batch.vehicle.region,
            )
        )
