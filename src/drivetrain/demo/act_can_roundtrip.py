"""Act "CAN bus to VSS signals": encode a drive, decode it in batches, map it to VSS, publish it.

For each vehicle: a deterministic drive (``drive_profile``) is encoded frame by frame with
cantools from the reference vehicle's DBC; the project's ``BatchDecoder`` decodes the whole
capture at once; the values must equal the encoded ones within the DBC resolution, every frame
must be decoded and every counter and checksum must hold. The DBC→VSS map turns the values
into VSS signals, each checked against the built-in catalog (path, datatype, range), and they
are published as telemetry on ``dt/v1/{vin}/telemetry``, where a subscriber counts them.

Telemetry payloads here are JSON (``{"v": 1, "vin", "batch", "paths", "t", "path", "value"}``),
one per second of driving; the batch id lets a subscriber drop redeliveries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import BatchDecoder, FrameBatch, VssSignals
from drivetrain.core.transport import TELEMETRY, Message, Transport, vehicle_filter, vehicle_topic
from drivetrain.core.vss import Catalog
from drivetrain.demo.acts import Act, ActResult, DemoContext
from drivetrain.demo.can_capture import (
    SignalIndex,
    synthesize_capture,
    verify_roundtrip,
)
from drivetrain.demo.drive_profile import drive_profile
from drivetrain.sim.reference_vehicle import ReferenceVehicle, load_reference_vehicle

NAME = "can-roundtrip"
TITLE = "CAN bus to VSS signals"
#: Telemetry payload format version.
PAYLOAD_VERSION = 1
#: Seconds of drive per telemetry message.
BATCH_S = 1.0
#: Share of the act's budget that encoding may use; the rest decodes, checks and publishes.
ENCODE_SHARE = 0.6

#: Changes frames between the "bus" and the decoder (tests use it to corrupt one).
FrameTamper = Callable[[FrameBatch], FrameBatch]


def demo_vin(seed: int, number: int) -> str:
    """The VIN of demo vehicle ``number`` (from 1) for ``seed``: ``1DTBEV`` + 11 characters.

    World manufacturer code ``1DT`` and a descriptor ``BEV`` are the demo's own; the serial
    is the number, so VINs are stable for a seed and distinct across vehicles.
    """
    return f"1DTBEV{seed % 100_000:05d}{number:06d}"


@dataclass
class TelemetryCounter:
    """Counts VSS values arriving on the telemetry topics, dropping redelivered batches."""

    catalog: Catalog
    values: int = 0
    messages: int = 0
    unknown_paths: set[str] = field(default_factory=set)
    _batches: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, message: Message) -> None:
        body = json.loads(message.payload)
        with self._lock:
            if body["batch"] in self._batches:
                return
            self._batches.add(body["batch"])
            self.messages += 1
            self.values += len(body["value"])
            self.unknown_paths.update(p for p in body["paths"] if p not in self.catalog)


def vss_values(vss: VssSignals, catalog: Catalog) -> tuple[list[object], int, str]:
    """VSS values in their datatypes (``bool`` for booleans, integers rounded), the count of
    values the catalog rejects, and a description of the first one rejected."""
    out: list[object] = [None] * len(vss)
    invalid, first = 0, ""
    for path_index, path in enumerate(vss.paths):
        rows = np.flatnonzero(vss.path_index == path_index)
        if not len(rows):
            continue
        spec = catalog.get(path)
        raw = vss.value[rows]
        typed: npt.NDArray[np.generic]
        if spec.datatype == "boolean":
            typed = raw != 0
        elif spec.datatype.startswith(("int", "uint")):
            typed = np.round(raw).astype(np.int64)
        else:
            typed = raw
        ok = catalog.validate_array(path, typed)
        if not ok.all():
            invalid += int((~ok).sum())
            first = first or f"{path} = {typed[~ok][0].item()!r}"
        for row, value in zip(rows.tolist(), typed.tolist(), strict=True):
            out[row] = value
    return out, invalid, first


def publish_telemetry(transport: Transport, vin: str, vss: VssSignals, values: list[object]) -> int:
    """Publish ``values`` in one-second batches (by timestamp, whatever order the rows come in)
    to ``dt/v1/{vin}/telemetry``; returns how many values were published."""
    topic = vehicle_topic(vin, TELEMETRY)
    order = np.argsort(vss.timestamp_s, kind="stable")
    times = vss.timestamp_s[order]
    path_index = vss.path_index[order]
    ordered = [values[i] for i in order.tolist()]
    second = np.floor(times / BATCH_S).astype(np.int64)
    published = 0
    for batch, start, stop in _runs(second):
        body = {
            "v": PAYLOAD_VERSION,
            "vin": vin,
            "batch": f"{vin}:{batch}",
            "paths": vss.paths,
            "t": np.round(times[start:stop], 4).tolist(),
            "path": path_index[start:stop].tolist(),
            "value": ordered[start:stop],
        }
        transport.publish(topic, json.dumps(body, separators=(",", ":")).encode(), qos=1)
        published += stop - start
    return published


def _runs(keys: npt.NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """(key, start, stop) of each run of equal keys in a sorted array."""
    if not len(keys):
        return []
    edges = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(keys)]])
    return [(int(keys[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def make_can_roundtrip_act(tamper: FrameTamper | None = None) -> Act:
    """The act; ``tamper`` (tests only) alters the frames before they reach the decoder."""

    def run(context: DemoContext) -> ActResult:
        return _run(context, tamper)

    return Act(name=NAME, title=TITLE, run=run, weight=1.0)


def _run(context: DemoContext, tamper: FrameTamper | None) -> ActResult:
    reference = load_reference_vehicle()
    database = reference.database
    index = SignalIndex.of(database)
    decoder = BatchDecoder(database)
    transport = context.platform.transport
    counter = TelemetryCounter(reference.catalog)
    subscription = transport.subscribe(vehicle_filter(TELEMETRY), counter, qos=1)
    started = time.monotonic()
    encode_until = started + ENCODE_SHARE * context.budget_s
    frames = values = vss_total = published = invalid = 0
    decode_s = 0.0
    problems: list[str] = []
    done = 0
    try:
        for number in range(1, context.vehicles + 1):
            context.check_time()
            vin = demo_vin(context.seed, number)
            context.report(
                f"vehicle {number}/{context.vehicles}: encoding a drive with cantools",
                fraction=(number - 1) / context.vehicles,
            )
            t0 = time.monotonic()
            profile = drive_profile(context.rng(f"{NAME}:{vin}"))
            capture = synthesize_capture(database, index, profile, vin)
            received = tamper(capture.frames) if tamper is not None else capture.frames
            t1 = time.perf_counter()
            decoded = decoder.decode(received)
            decode_s += time.perf_counter() - t1
            check = verify_roundtrip(
                capture, received, decoded, database, index, reference.checksummed_frame_ids()
            )
            problems += [f"{vin}: {p}" for p in check.problems]
            vss = reference.signal_map.apply(decoded)
            typed, bad, first_bad = vss_values(vss, reference.catalog)
            if bad:
                problems.append(
                    f"{vin}: {bad} VSS values rejected by the catalog, e.g. {first_bad}"
                )
            published += publish_telemetry(transport, vin, vss, typed)
            frames, values, vss_total, invalid = (
                frames + check.frames,
                values + check.values,
                vss_total + len(vss),
                invalid + bad,
            )
            done = number
            context.report(
                f"vehicle {number}/{context.vehicles}: {check.frames:,} frames decoded",
                fraction=number / context.vehicles,
                figures=_figures(frames, values, decode_s, done, vss_total),
            )
            per_vehicle_s = time.monotonic() - t0
            if number < context.vehicles and time.monotonic() + per_vehicle_s > encode_until:
                break  # the rest would not fit the time budget
        context.report("waiting for the telemetry subscriber", fraction=1.0)
        transport.drain(timeout_s=max(1.0, context.remaining_s()))
    finally:
        subscription.unsubscribe()
    return _verdict(
        context, reference, done, frames, values, vss_total, published, counter, decode_s, problems
    )


def _figures(
    frames: int, values: int, decode_s: float, vehicles: int, vss: int
) -> dict[str, float | int | str]:
    return {
        "vehicles": vehicles,
        "frames": frames,
        "signals": values,
        "frames/s": round(frames / decode_s) if decode_s > 0 else 0,
        "vss_values": vss,
    }


def _verdict(
    context: DemoContext,
    reference: ReferenceVehicle,
    done: int,
    frames: int,
    values: int,
    vss_total: int,
    published: int,
    counter: TelemetryCounter,
    decode_s: float,
    problems: list[str],
) -> ActResult:
    if counter.values != published:
        problems.append(
            f"published {published:,} VSS values, the subscriber received {counter.values:,}"
        )
    if counter.unknown_paths:
        problems.append(
            f"telemetry named paths outside the catalog: {sorted(counter.unknown_paths)}"
        )
    if done == 0:
        problems.append("no vehicle fitted in the time budget")
    figures = _figures(frames, values, decode_s, done, vss_total)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return ActResult(False, problems[0] + more, figures)
    scope = (
        f"{done} vehicles"
        if done == context.vehicles
        else f"{done} of {context.vehicles} vehicles (time budget)"
    )
    check = (
        f"{scope}: {frames:,} frames encoded by cantools, all decoded in batch within DBC "
        f"resolution, counters and checksums hold; {vss_total:,} VSS values valid in the "
        f"catalog ({len(reference.signal_map.mappings)} mappings), {counter.values:,} of "
        f"{published:,} received over the bus"
    )
    return ActResult(True, check, figures)


#: The act as the scenario plays it.
CAN_ROUNDTRIP = make_can_roundtrip_act()
