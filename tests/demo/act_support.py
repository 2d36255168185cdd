"""Contexts for running one act against a test platform (shared by the act tests)."""

from __future__ import annotations

import threading
import time

from drivetrain.demo import DemoContext, PlatformHandles


def act_context(
    platform: PlatformHandles, *, vehicles: int = 1, seed: int = 7, budget_s: float = 30.0
) -> DemoContext:
    """An act's context on ``platform``: its deadline ``budget_s`` seconds from now, a progress
    sink that drops updates, and a cancellation event nobody sets."""
    return DemoContext(
        settings=platform.settings,
        platform=platform,
        seed=seed,
        vehicles=vehicles,
        budget_s=budget_s,
        deadline=time.monotonic() + budget_s,
        progress_sink=lambda fraction, message, figures: None,
        cancelled=threading.Event(),
    )
