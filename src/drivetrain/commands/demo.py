"""`drivetrain demo`: start the embedded platform and play the scenario."""

from __future__ import annotations

import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from drivetrain.core.settings import Settings
    from drivetrain.demo import PlatformHandles, ScenarioOptions

#: A kept data directory carries this file, so the demo never writes into a real deployment's.
DEMO_MARKER = ".drivetrain-demo"
#: Exit codes: every act passed / some act failed / the demo could not run at all.
EXIT_PASSED, EXIT_ACT_FAILED, EXIT_CANNOT_RUN = 0, 1, 2
#: Exit code after Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _prepare_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` or accept it if empty or a previous demo's; refuse anything else.

    Raises:
        BadInputError: ``data_dir`` is a file, or a non-empty directory without the marker.
    """
    from drivetrain.core.errors import BadInputError

    if data_dir.exists() and not data_dir.is_dir():
        raise BadInputError(f"--data-dir '{data_dir}' is a file; expected a directory")
    if data_dir.is_dir() and any(data_dir.iterdir()) and not (data_dir / DEMO_MARKER).exists():
        raise BadInputError(
            f"--data-dir '{data_dir}' is not empty and was not made by `drivetrain demo` "
            f"(no {DEMO_MARKER} file); the demo refuses to write into it. Pick a new directory."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).write_text("made by `drivetrain demo`; safe to delete\n")


def _serve(console: Console, settings: Settings, handles: PlatformHandles,
           options: ScenarioOptions) -> None:
    """Keep the platform up with the fleet driving until Ctrl-C."""
    import threading

    from drivetrain.demo.serve import serve_until, sign_in_lines

    console.print("the platform keeps running; the fleet keeps driving. Ctrl-C stops it.",
                  markup=False)
    for line in sign_in_lines(handles):
        console.print(f"  {line}", markup=False, soft_wrap=True)
    stop = threading.Event()
    try:
        serve_until(stop, settings=settings, handles=handles, options=options)
    except KeyboardInterrupt:
        stop.set()
        console.print("stopping the platform", markup=False)


def demo(
    vehicles: int = typer.Option(
        5, "--vehicles", min=1, max=10_000, help="Vehicles the acts simulate."
    ),
    duration: float = typer.Option(
        60.0,
        "--duration",
        min=1.0,
        help="Total seconds the acts may share; the demo ends about then at the latest.",
    ),
    seed: int = typer.Option(7, "--seed", min=0, help="Same seed, same data."),
    headless: bool = typer.Option(
        False, "--headless", help="Plain log lines instead of the live view (for CI and logs)."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Keep the demo's state here (default: a temporary directory, removed at the end). "
        "Never a real deployment's data directory.",
    ),
    serve: bool = typer.Option(
        False, "--serve",
        help="After the acts, keep the platform (API, console, the fleet driving) running "
        "until Ctrl-C, and print the console's address and how to sign in.",
    ),
    port: int = typer.Option(
        0, "--port", min=0, max=65535, help="Serve the API and console on this localhost "
        "port (default: a free one).",
    ),
) -> None:
    """Start the embedded platform (database, message bus, API) in this process and play every act.

    Exit status: 0 when every act's own check passed, 1 when one failed, 2 when the demo could
    not start.
    """
    from rich.console import Console

    from drivetrain.core.errors import DrivetrainError
    from drivetrain.demo import (
        SCENARIO,
        EmbeddedPlatform,
        ScenarioOptions,
        demo_settings,
        run_scenario,
    )
    from drivetrain.demo.board import BoardObserver
    from drivetrain.demo.view import HeadlessObserver, LiveObserver, summary_table

    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    options = ScenarioOptions(seed=seed, vehicles=vehicles, duration_s=duration)
    workdir = Path(tempfile.mkdtemp(prefix="drivetrain-demo-")) if data_dir is None else data_dir
    try:
        try:
            _prepare_data_dir(workdir)
            settings = demo_settings(workdir, port=port)
            platform = EmbeddedPlatform(settings)
            handles = platform.start()
        except DrivetrainError as e:
            errors.print(f"error: {e}", markup=False)
            raise typer.Exit(EXIT_CANNOT_RUN) from e
        try:
            header = (
                f"API {handles.api_url} (console {handles.api_url}/#/demo shows the acts; docs "
                f"{handles.api_url}/docs; admin credentials {handles.admin_credentials.path})  "
                f"seed={seed} vehicles={vehicles} budget={duration:g} s  data {workdir}"
            )
            acts = list(SCENARIO)
            # The console shows the acts too, as they happen (its Demo page reads /v1/demo).
            if headless:
                console.print(f"drivetrain demo: {header}", markup=False, soft_wrap=True)
                report = run_scenario(
                    acts,
                    options=options,
                    settings=settings,
                    platform=handles,
                    observer=BoardObserver(handles.board, acts, HeadlessObserver(console)),
                )
            else:
                with LiveObserver(console, acts, header) as live:
                    report = run_scenario(
                        acts, options=options, settings=settings, platform=handles,
                        observer=BoardObserver(handles.board, acts, live),
                    )
            if serve:
                handles.board.serving()
                console.print(summary_table(report))
                _serve(console, settings, handles, options)
        finally:
            platform.stop()
        if not serve:
            console.print(summary_table(report))
        for outcome in report.outcomes:
            if outcome.error is not None and outcome.status == "error":
                errors.print(f"act {outcome.act.name!r} raised:", markup=False)
                traceback.print_exception(outcome.error, file=sys.stderr)
        if data_dir is not None:
            console.print(f"state kept in {workdir}", markup=False, soft_wrap=True)
        raise typer.Exit(report.exit_code)
    except KeyboardInterrupt:
        errors.print("interrupted: the platform was stopped", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if data_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
