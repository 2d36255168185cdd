"""`drivetrain can` commands: decode captures with a DBC, and inspect DBC files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from drivetrain.core.errors import DrivetrainError

app = typer.Typer(
    help="CAN tools: decode captures with a DBC (optionally to VSS), inspect DBC files.",
    no_args_is_help=True,
)

#: Malformed-line reports printed before "and N more".
SHOWN_MALFORMED = 5


def _fail(console: Console, error: DrivetrainError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
    return typer.Exit(code=1)


@app.command("decode")
def decode(
    capture: Path = typer.Argument(
        ..., help="Capture file: candump .log, .asc, .blf, or CSV (t_s,bus,address,data_hex or ROAD)."
    ),
    dbc: Path = typer.Option(..., "--dbc", help="DBC file to decode with (IMPORTs are resolved)."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write (replaced only on success)."),
    signal_map: Path | None = typer.Option(
        None, "--map", help="DBC→VSS signal map (TOML/YAML): write VSS paths and converted values."
    ),
    bus: int | None = typer.Option(None, "--bus", help="Decode only this bus (default: every bus)."),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first malformed capture line instead of skipping it."
    ),
) -> None:
    """Decode a CAN capture with a DBC into Parquet, one row per signal value."""
    from drivetrain.core.can import DecodeProgress, decode_capture

    console = Console(stderr=True, soft_wrap=True)
    out_console = Console(highlight=False, soft_wrap=True)
    progress = Progress(
        TextColumn("decoding [bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[frames]:,} frames"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task(capture.name, total=None, frames=0)

    def advance(update: DecodeProgress) -> None:
        progress.update(task, completed=update.bytes_read, total=update.bytes_total, frames=update.frames_read)

    try:
        with progress:
            summary = decode_capture(
                capture, dbc, out, signal_map=signal_map, bus=bus, progress=advance, strict=strict
            )
    except DrivetrainError as e:
        raise _fail(console, e) from e

    kind = "VSS values" if summary.vss_mapped else "signal values"
    out_console.print(
        f"{summary.frames_read:,} frames, {summary.signal_values:,} {kind} -> {summary.out_path} "
        f"in {summary.seconds:.2f} s ({summary.frames_per_s:,.0f} frames/s)"
    )
    if summary.frames_unknown_id:
        top = ", ".join(f"{fid:#x} ({n:,})" for fid, n in summary.top_unknown_ids)
        out_console.print(
            f"{summary.frames_unknown_id:,} frames with ids not in {dbc.name} (not decoded); "
            f"most frequent: {top}"
        )
    if summary.frames_truncated:
        out_console.print(
            f"{summary.frames_truncated:,} frames shorter than their DBC message: "
            f"{summary.values_missing:,} values not received, written as null"
        )
    if summary.frames_rejected:
        out_console.print(f"{summary.frames_rejected:,} multiplexed frames with no matching branch (no values)")
    if summary.frames_other_bus:
        out_console.print(f"{summary.frames_other_bus:,} frames on other buses left out (--bus {bus})")
    for report in summary.malformed[:SHOWN_MALFORMED]:
        out_console.print(f"malformed: {report}", markup=False)
    if summary.malformed_count > SHOWN_MALFORMED:
        out_console.print(f"... and {summary.malformed_count - SHOWN_MALFORMED:,} more malformed lines")


@app.command("info")
def info(dbc: Path = typer.Argument(..., help="DBC file to describe.")) -> None:
    """List a DBC's messages and signals, and what the loader resolved (IMPORTs, repairs)."""
    from drivetrain.core.can import load_dbc

    console = Console(highlight=False, soft_wrap=True)
    try:
        loaded = load_dbc(dbc)
    except DrivetrainError as e:
        raise _fail(Console(stderr=True, soft_wrap=True), e) from e
    messages = sorted(loaded.database.messages, key=lambda m: m.frame_id)
    table = Table(title=f"{dbc.name}: {len(messages)} messages, "
                  f"{sum(len(m.signals) for m in messages)} signals")
    for column in ("id", "message", "bytes", "signals", "multiplexed", "senders"):
        table.add_column(column, justify="right" if column in ("id", "bytes", "signals") else "left")
    for m in messages:
        ident = f"{m.frame_id:#010x}" if m.is_extended_frame else f"{m.frame_id:#05x}"
        table.add_row(ident, m.name, str(m.length), str(len(m.signals)),
                      "yes" if m.is_multiplexed() else "", ", ".join(m.senders))
    console.print(table)
    if loaded.notes:
        console.print("loader notes:")
        for note in loaded.notes:
            console.print(f"  - {note}", markup=False)
    else:
        console.print("loader notes: none (cantools read the file as it is)")
