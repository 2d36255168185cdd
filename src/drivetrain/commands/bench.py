"""`drivetrain bench` commands: the insights models measured on real public data.

- ``rul``: remaining useful life on NASA C-MAPSS (train on ``train_FD00x``, score each official
  test unit at its last cycle against ``RUL_FD00x.txt``).
- ``battery``: end-of-life cycle of the NASA Li-ion cells from their early cycles.

Both need the ``insights`` extra (LightGBM, scikit-learn).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from drivetrain.commands.db import fail

app = typer.Typer(
    help="Benchmarks of the insights models on real public data (C-MAPSS, NASA batteries).",
    no_args_is_help=True,
)

#: Best published RMSE (deep networks on GPU) on FD001-FD004, for the table.
PUBLISHED_RMSE = {"FD001": 10.97, "FD002": 12.55, "FD003": 10.90, "FD004": 14.08}

DataDirOption = Annotated[
    Path,
    typer.Option("--data-dir", help="Folder with train_/test_/RUL_ files (C-MAPSS).", show_default=False),
]


@app.command("rul")
def bench_rul(
    data_dir: DataDirOption,
    subset: Annotated[
        list[str],
        typer.Option("--subset", help="FD001..FD004; repeat for several (default: FD001 and FD003)."),
    ] = [],  # noqa: B006 - typer needs a literal default for a repeated option
    dataset: Annotated[str, typer.Option("--dataset", help="Data set (only 'cmapss').")] = "cmapss",
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the figures as JSON here (one subset: one object)."),
    ] = None,
    members: Annotated[int, typer.Option("--members", min=1, max=50, help="Models in the bag.")] = 5,
) -> None:
    """Train the RUL model on train_FD00x and score the official test units.

    RMSE and NASA score are against the true RUL capped at 125 cycles (the convention of every
    published figure); rmse_raw is against the raw labels. train_s is CPU seconds.
    """
    from drivetrain.cloud.insights._deps import MissingExtraError
    from drivetrain.cloud.insights.cmapss import CmapssFormatError, load_subset
    from drivetrain.cloud.insights.rul_model import RulConfig, RulModel, evaluate

    if dataset != "cmapss":
        fail(f"--dataset {dataset!r} is not supported; expected 'cmapss'")
    subsets = subset or ["FD001", "FD003"]
    console = Console(stderr=True)
    results = []
    for name in subsets:
        try:
            data = load_subset(data_dir, name)
        except CmapssFormatError as e:
            fail(e)
        with Progress(
            TextColumn(f"{name} training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task(name, total=members)

            def advance(done: int, _total: int, progress: Progress = progress,
                        task: TaskID = task) -> None:
                progress.update(task, completed=done)

            try:
                model = RulModel.fit(data.train, RulConfig(members=members), progress=advance)
            except MissingExtraError as e:
                fail(e)
        results.append(evaluate(model, name, data.test, data.test_rul))
    table = Table(
        title="C-MAPSS remaining useful life (test units, last cycle)",
        caption="RMSE and NASA score vs the true RUL capped at 125; raw: vs the raw labels; "
        "published: best deep-net RMSE; train: CPU seconds",
    )
    for column in ("subset", "conditions", "units", "RMSE", "RMSE raw", "score", "published",
                   "train s"):  # fmt: skip
        table.add_column(column, justify="right" if column != "subset" else "left")
    for r in results:
        table.add_row(
            r.subset, str(r.conditions), str(r.test_units), f"{r.rmse:.2f}", f"{r.rmse_raw:.2f}",
            f"{r.score:.0f}", f"{PUBLISHED_RMSE.get(r.subset, float('nan')):.2f}", f"{r.train_s:.0f}",
        )  # fmt: skip
    Console(highlight=False).print(table)
    if json_out is not None:
        payload: object = (
            results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
        )
        json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


@app.command("battery")
def bench_battery(
    data_dir: DataDirOption,
    known: Annotated[
        list[int], typer.Option("--known", help="Cycles known at prediction time; repeatable.")
    ] = [40, 60, 80],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Predict each NASA cell's end-of-life cycle (first capacity below 1.4 Ah) from its first
    cycles, leave one cell out; error in cycles, ours (similarity) and a linear baseline."""
    from drivetrain.cloud.insights.battery_eol import (
        BatteryDataError,
        leave_one_cell_out,
        mean_abs_error,
        read_capacity_table,
    )

    try:
        cells = read_capacity_table(data_dir / "capacity_per_cycle.csv")
        predictions = leave_one_cell_out(cells, known)
    except (BatteryDataError, ValueError) as e:
        fail(e)
    summary = {
        f"{method}_mae_cycles_at_{n}": round(mean_abs_error(predictions, method, n), 1)
        for n in known
        for method in ("similarity", "linear")
    }
    if as_json:
        print(json.dumps({"predictions": [p.to_dict() for p in predictions], "summary": summary}))
        return
    table = Table(title="NASA Li-ion cells: end of life (< 1.4 Ah) predicted from early cycles")
    for column in ("cell", "known cycles", "true EOL", "similarity", "error", "linear", "error"):
        table.add_column(column, justify="right" if column != "cell" else "left")
    by_key = {(p.cell, p.known_cycles, p.method): p for p in predictions}
    for cell in cells:
        for n in known:
            ours, base = by_key[(cell, n, "similarity")], by_key[(cell, n, "linear")]
            table.add_row(
                cell, str(n), str(ours.true_eol) if ours.true_eol else f"> {ours.last_cycle}",
                _cycles(ours.predicted_eol), _error(ours), _cycles(base.predicted_eol), _error(base),
            )  # fmt: skip
    console = Console(highlight=False)
    console.print(table)
    for n in known:
        console.print(
            f"known {n} cycles: mean |error| similarity {summary[f'similarity_mae_cycles_at_{n}']} "
            f"cycles, linear {summary[f'linear_mae_cycles_at_{n}']} cycles (cells with a known EOL)"
        )


def _cycles(value: float) -> str:
    return "never" if value == float("inf") else f"{value:.0f}"


def _error(prediction: object) -> str:
    from drivetrain.cloud.insights.battery_eol import EolPrediction

    assert isinstance(prediction, EolPrediction)
    if prediction.error_cycles is not None:
        return f"{prediction.error_cycles:+.0f}"
    if prediction.error_lower_bound is not None:
        return f"≤ -{prediction.error_lower_bound:.0f}"
    return "n/a (censored)"
