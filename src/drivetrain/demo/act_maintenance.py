"""Act "Maintenance predicted": failures forecast on held-out vehicles and booked ahead.

A seeded virtual fleet (physics, wear and faults, accelerated) reports its health signals the
way the lake stores them; the maintenance models train on 70 % of the vehicles with the
simulator's ground truth and replay the other 30 % through time. The act checks that most
held-out failures were alerted before they happened, then books the latest alerts into service
centres with CP-SAT (capacity, parts in stock, before the window) and checks every booking.
"""

from __future__ import annotations

import numpy as np

from drivetrain.demo.acts import Act, ActResult, DemoContext

NAME = "maintenance"
TITLE = "Maintenance predicted: failures forecast on held-out vehicles, service booked"


def run(context: DemoContext) -> ActResult:
    from drivetrain.cloud.insights.booking import COMPONENT_PARTS as PARTS
    from drivetrain.cloud.insights.maintenance import (
        MaintenanceModels,
        evaluate_alerts,
        failures_from_events,
        observation_frame,
        split_vehicles,
    )
    from drivetrain.cloud.insights.maintenance_data import simulate_history
    from drivetrain.cloud.insights.scheduling import ServiceCentre, ServiceRequest, schedule

    vehicles = max(60, min(100, context.vehicles * 4))
    context.report(f"simulating {vehicles} vehicles with wear and faults", fraction=0.05)
    history = simulate_history(vehicles, seed=context.seed, steps=2400, dt_s=5.0, sample_every_steps=30)
    context.check_time()
    frame = observation_frame(history.signals)
    failures = failures_from_events(history.events)
    train, held = split_vehicles(list(history.vins), 0.3, seed=context.seed)
    in_train = np.isin(frame.vehicle, sorted(train))
    span = float(frame.ts_s.max() - frame.ts_s.min())
    context.report("training the component models", fraction=0.4)
    models = MaintenanceModels(horizon_s=span / 6).fit(frame.take(in_train), failures)
    context.check_time()
    context.report("replaying held-out vehicles", fraction=0.7)
    results = evaluate_alerts(models, frame.take(~in_train), failures)
    total = sum(r.failures for r in results)
    caught = sum(r.caught for r in results)
    leads = [r.mean_lead_time_s * r.caught for r in results if r.caught]
    mean_lead_s = sum(leads) / caught if caught else float("nan")
    alerts = models.alerts(frame.take(~in_train))
    rng = context.rng(NAME)
    centres = [
        ServiceCentre(f"centre-{i}", 48.1 + 0.1 * i, 11.5, daily_capacity=2,
                      stock={p: int(rng.integers(1, 4)) for p in PARTS.values()})
        for i in range(3)
    ]
    requests = [
        ServiceRequest(a.vehicle, a.component, PARTS[a.component], 48.15, 11.5,
                       latest_day=max(1, int((a.window_start_s - a.issued_s) / span * 14) + 2))
        for a in {a.vehicle: a for a in alerts}.values()
    ]
    context.report(f"booking {len(requests)} vehicles", fraction=0.9)
    appointments = schedule(requests, centres, days=14) if requests else []
    booked = [a for a in appointments if a.centre_id is not None]
    ok_bookings = all(
        a.day is not None and a.day < r.latest_day for a, r in zip(appointments, requests, strict=True) if a.centre_id
    )
    share = caught / total if total else 0.0
    passed = total > 0 and share >= 0.6 and ok_bookings
    figures = {
        "held_out_vehicles": len(held),
        "held_out_failures": total,
        "caught_ahead": caught,
        "missed_failures": total - caught,
        "mean_lead_time_s": round(mean_lead_s, 1),
        "alerts_now": len(alerts),
        "appointments_booked": len(booked),
        "appointments_unbooked": len(appointments) - len(booked),
    }
    check = (
        f"maintenance predicted: {caught} of {total} held-out failures alerted ahead "
        f"(mean lead {mean_lead_s / 60:.0f} simulated min), {total - caught} missed; "
        f"{len(booked)} of {len(appointments)} alerted vehicles booked before their window"
    )
    return ActResult(passed=passed, check=check if passed else f"FAILED: {check}", figures=figures)


MAINTENANCE_PREDICTED = Act(
    name=NAME, title=TITLE, run=run, weight=0.9, min_budget_s=25.0
)
