"""Act: attack answered — a masquerade on two vehicles' buses is detected on each vehicle, the
events reach the cloud through the signed event uplink, become a fleet incident, and a response
playbook, approved by a second person, sends the signed "disable function" command to the
affected vehicles through the commands dispatcher.

The vehicles' detector is trained here on benign traffic of the SUV model (the simulator's
DBC), as a deployment would ship it; the attack is the simulator's masquerade of
``ESC_VehSpeed`` (a forged speed at the genuine period, valid counter and CRC). What is not
shown: the vehicles applying the command and reporting the function off (the simulated
agents do not implement the security commands yet).
"""

from __future__ import annotations

import random
import time

import numpy as np

from drivetrain.cloud.commands import get_job
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.security import (
    approve_response,
    correlate,
    fleet_incidents,
    propose_response,
)
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import MessageKind, events_to_dict, seal_json
from drivetrain.demo.acts import Act, ActResult, DemoContext
from drivetrain.edge import EventLimiter, events_from, to_vehicle_event, train_model
from drivetrain.sim.can import FrameSynthesizer, LabelledFrames, load_vehicle_can, masquerade
from drivetrain.sim.can.throughput import random_vss_values

TENANT = "default"
MODEL = "suv-bev-ids-demo"
ATTACK_START_S = 4.0
FUNCTION = "speed_limiter"


def _run(context: DemoContext) -> ActResult:
    rng = context.rng("attack-answered")
    can = load_vehicle_can("suv_bev")
    synth = FrameSynthesizer(can.database, can.signal_map, seed=int(rng.integers(1 << 30)))
    values = random_vss_values(synth, 1, rng)

    def drive(start_s: float) -> LabelledFrames:
        return LabelledFrames.benign(synth.synthesize(start_s, start_s + 10.0, values).for_vehicle(0))

    context.report("training the vehicle's detector on benign traffic", fraction=0.05)
    model = train_model([drive(s).frames for s in (0.0, 100.0, 200.0)])
    context.check_time()
    database = context.platform.database
    with database.session() as session:
        seeded = random.Random(int(rng.integers(1 << 30)))
        vehicles = [
            provision_vehicle(session, tenant=TENANT, model=MODEL, region="EU",
                              cloud_key=SigningKey.generate().verify_key, actor="demo", rng=seeded)
            for _ in range(2)
        ]  # fmt: skip
    latencies = []
    sent_events = 0
    epoch = time.time() - 20.0
    for n, (vehicle, creds) in enumerate(vehicles):
        start = 300.0 + 50.0 * n
        traffic = masquerade(drive(start), rng, synth.bus_layout, message="ESC_VehSpeed",
                             values={"VehSpeed": 55.0}, start_s=start + ATTACK_START_S, duration_s=4.0)
        stream = model.stream()
        limiter = EventLimiter()
        events = []
        for first in range(0, len(traffic.frames), 512):  # the bus, tick by tick
            batch = traffic.frames.take(np.arange(first, min(first + 512, len(traffic.frames))))
            raised = events_from(model, batch, stream.score(batch))
            events += limiter.offer(raised, float(batch.timestamp_s[-1]))
        events += limiter.flush()
        attack_start = float(traffic.frames.timestamp_s[traffic.is_attack].min())
        after = [e.first_s - attack_start for e in events if e.first_s >= attack_start]
        if not after:
            return ActResult(False, f"vehicle {vehicle.vin}: the masquerade raised no security event")
        latencies.append(min(after))
        wire = [to_vehicle_event(e, epoch_offset_s=epoch - start) for e in events]
        payload = seal_json(MessageKind.EVENTS, vehicle.vin, events_to_dict(wire), key=creds.signing_key, seq=1)
        context.platform.transport.publish(vehicle_topic(vehicle.vin, "events"), payload)
        sent_events += len(wire)
        context.report(f"{vehicle.vin}: attack detected after {latencies[-1]:.2f} s", fraction=0.3 + 0.2 * n)
    if not context.platform.ingest.wait_idle(timeout_s=max(1.0, context.remaining_s())):
        return ActResult(False, "ingest did not store the security events in time")
    with database.session() as session:
        report = correlate(session, tenant=TENANT)
        vins = {v.vin for v, _ in vehicles}
        fleet = [f for f in fleet_incidents(session, tenant=TENANT, window_s=3600.0)
                 if f.group == MODEL and set(f.vehicles) == vins]
        if not fleet:
            return ActResult(False, f"no fleet incident over both vehicles ({report.incidents_opened} incidents opened)")
        incident = fleet[0]
        proposed = propose_response(session, tenant=TENANT, signature=incident.signature,
                                    playbook="disable_function", function=FUNCTION, actor="demo:analyst")
        done = approve_response(session, tenant=TENANT, response_id=proposed.response_id, actor="demo:lead")
        job = get_job(session, done.job_id or "", tenant=TENANT)
    worst = max(latencies)
    passed = worst <= 1.0 and set(done.vins) == vins and job.counts.total == len(vins)
    check = (
        f"attack answered: masquerade detected on both vehicles within {worst:.2f} s of simulated time, "
        f"{sent_events} signed events -> fleet incident {incident.signature} ({incident.severity}) -> "
        f"'disable {FUNCTION}' approved by a second person, job {job.job_id} to {job.counts.total} vehicles"
    )
    return ActResult(passed, check, {
        "detect_latency_s": round(worst, 3), "events": sent_events, "incidents": report.incidents_opened,
        "fleet_severity": incident.severity, "commands": job.counts.total,
    })  # fmt: skip


# It needs a few seconds; a small weight leaves the earlier acts their share of the budget
# (the last act gets whatever time is left anyway).
ATTACK_ANSWERED = Act(
    name="attack-answered", title="Attack answered", run=_run, weight=0.25, min_budget_s=8.0
)
