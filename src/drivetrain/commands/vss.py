"""`drivetrain vss` commands: browse the VSS signal catalog and check values against it."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from drivetrain.commands.output import Column, JsonOption, emit_json, print_table, stdout_console
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.vss import Catalog, SignalSpec, builtin_catalog
from drivetrain.core.vss.datatypes import element_type, is_array, is_numeric

app = typer.Typer(
    help="Browse the COVESA VSS signal catalog and check values against it.",
    no_args_is_help=True,
)


class Category(str, Enum):
    """The privacy categories, as a command-line choice."""

    location = "location"
    driving_behaviour = "driving_behaviour"
    cabin = "cabin"
    diagnostics = "diagnostics"
    technical = "technical"


CatalogOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="A full VSS JSON export (vss-tools `vspec export json`) to use instead.",
        dir_okay=False,
    ),
]


def _fail(error: DrivetrainError) -> typer.Exit:
    Console(stderr=True).print(
        Text.assemble(("error:", "bold red"), f" {error}"), highlight=False, soft_wrap=True
    )
    return typer.Exit(code=1)


def _catalog(catalog_file: Path | None) -> Catalog:
    if catalog_file is None:
        return builtin_catalog()
    try:
        return Catalog.from_vss_json(catalog_file)
    except DrivetrainError as e:
        raise _fail(e) from e


@app.command("list")
def list_signals(
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix", "-p", help="Only signals at or below this VSS branch, e.g. Vehicle.Cabin."
        ),
    ] = None,
    category: Annotated[
        Category | None,
        typer.Option("--category", "-c", help="Only signals of this privacy category."),
    ] = None,
    catalog_file: CatalogOption = None,
    as_json: JsonOption = False,
) -> None:
    """List signals as a table: path, type, datatype, unit, min, max, privacy category
    (--json: each signal's full definition)."""
    catalog = _catalog(catalog_file)
    if prefix:
        catalog = catalog.with_prefix(prefix)
    if category is not None:
        catalog = catalog.in_category(category.value)
    if as_json:
        emit_json([spec.to_dict() for spec in catalog])
        return
    columns = [Column("path", "id"), Column("type"), Column("datatype"), Column("unit"),
               Column("min", "number"), Column("max", "number"), Column("privacy")]
    print_table("VSS signals", columns, (
        (spec.path, spec.node_type, spec.datatype, spec.unit, spec.minimum, spec.maximum,
         spec.privacy_category) for spec in catalog
    ))
    stdout_console().print(f"{len(catalog):,} signals")


@app.command("show")
def show(
    path: Annotated[str, typer.Argument(help="The VSS path, e.g. Vehicle.Speed.")],
    catalog_file: CatalogOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show everything the catalog knows about one signal (--json: its definition)."""
    catalog = _catalog(catalog_file)
    try:
        spec = catalog.get(path)
    except DrivetrainError as e:
        raise _fail(e) from e
    if as_json:
        emit_json(spec.to_dict())
        return
    fields = [(key, value if isinstance(value, str) else json.dumps(value))
              for key, value in spec.to_dict().items() if key != "path"]
    print_table(spec.path, [Column("field"), Column("value")], fields)


@app.command("validate")
def validate(
    path: Annotated[str, typer.Argument(help="The VSS path, e.g. Vehicle.Speed.")],
    value: Annotated[
        str,
        typer.Argument(
            help="The value as text: 87.5, 42, true/false, a string, or a JSON list for arrays."
        ),
    ],
    catalog_file: CatalogOption = None,
) -> None:
    """Check VALUE against the signal at PATH: print the normalised value, or the error (exit 1)."""
    catalog = _catalog(catalog_file)
    try:
        spec = catalog.get(path)
        normalised = catalog.validate(path, value_from_text(spec, value))
    except DrivetrainError as e:
        raise _fail(e) from e
    unit = f" {spec.unit}" if spec.unit else ""
    typer.echo(f"ok: {spec.path} = {json.dumps(normalised)}{unit} ({spec.datatype})")


def value_from_text(spec: SignalSpec, text: str) -> Any:
    """The command-line text read as the signal's datatype, or the text itself where it does not
    read as one (so that validation reports the mismatch with the value quoted)."""
    if is_array(spec.datatype):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    scalar = element_type(spec.datatype)
    if scalar == "boolean":
        return {"true": True, "false": False}.get(text.strip().lower(), text)
    if is_numeric(spec.datatype):
        for parse in (int, float):
            try:
                return parse(text)
            except ValueError:
                continue
    return text
