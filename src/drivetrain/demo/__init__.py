"""``drivetrain demo``: the embedded platform in one process, playing a scenario of acts.

Public surface: ``Act``, ``ActResult``, ``DemoContext`` (what an act is, returns and gets),
``SCENARIO`` (the ordered acts, in ``scenario.py``), ``run_scenario``/``ScenarioOptions``/
``ScenarioReport`` (the harness) and ``EmbeddedPlatform``/``PlatformHandles``/
``demo_settings`` (the platform acts run against). See docs/demo.md.
"""

from drivetrain.demo.acts import Act, ActResult, ActTimeoutError, DemoContext, Figure
from drivetrain.demo.harness import (
    ActOutcome,
    ScenarioObserver,
    ScenarioOptions,
    ScenarioReport,
    run_scenario,
)
from drivetrain.demo.platform import EmbeddedPlatform, PlatformHandles, demo_settings
from drivetrain.demo.scenario import SCENARIO

__all__ = [
    "SCENARIO",
    "Act",
    "ActOutcome",
    "ActResult",
    "ActTimeoutError",
    "DemoContext",
    "EmbeddedPlatform",
    "Figure",
    "PlatformHandles",
    "ScenarioObserver",
    "ScenarioOptions",
    "ScenarioReport",
    "demo_settings",
    "run_scenario",
]
