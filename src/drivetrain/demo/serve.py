"""``drivetrain demo --serve``: after the acts, keep the platform up with the fleet driving.

The API, the console and the twins act's cars (the same plan and the same identities, kept
in the demo's data directory) go on running until the caller sets ``stop`` (Ctrl-C), so a
newcomer can explore in the console what the demo just did while the cars keep reporting.
"""

from __future__ import annotations

import threading

from drivetrain.core.settings import Settings
from drivetrain.demo.act_twins import CREDENTIALS_DIR, OWNER, TENANT
from drivetrain.demo.act_twins import NAME as TWINS_ACT
from drivetrain.demo.acts import DemoContext
from drivetrain.demo.fleet_session import fleet_identities, running_fleet
from drivetrain.demo.harness import ScenarioOptions
from drivetrain.demo.platform import PlatformHandles
from drivetrain.sim.fleet import FleetSpec, plan_fleet


def sign_in_lines(handles: PlatformHandles) -> list[str]:
    """How to open the console and sign in (the secret's file, never the secret)."""
    credentials = handles.admin_credentials
    return [
        f"console: {handles.api_url}/   (API docs {handles.api_url}/docs)",
        (f"sign in with client ID {credentials.client_id} and the client_secret in "
         f"{credentials.path}"),
    ]


def _ignore_progress(_fraction: float | None, _message: str, _figures: object) -> None:
    return


def serve_until(
    stop: threading.Event, *, settings: Settings, handles: PlatformHandles,
    options: ScenarioOptions,
) -> None:
    """Drive the twins act's cars on the running platform until ``stop`` is set."""
    context = DemoContext(
        settings=settings, platform=handles, seed=options.seed, vehicles=options.vehicles,
        budget_s=float("inf"), deadline=float("inf"), progress_sink=_ignore_progress,
        cancelled=threading.Event(),
    )
    # The twins act's plan: the cars it drove are the ones the console shows converging.
    plan = plan_fleet(
        FleetSpec(vehicles=options.vehicles, seed=options.seed + 7_001, regions=("EU", "US"))
    )
    identities = fleet_identities(
        context, plan, tenant=TENANT, owner=OWNER, actor=f"demo:{TWINS_ACT}",
        folder=context.data_dir / CREDENTIALS_DIR,
    )
    with running_fleet(context, plan, identities):
        while not stop.wait(0.5):  # a timed wait, so Ctrl-C reaches the main thread
            pass
