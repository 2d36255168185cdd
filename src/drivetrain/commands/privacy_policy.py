"""`drivetrain privacy policy ...`: the per-region minimisation policy, and sending it to the
cars.

Works on the configured state database directly, as an operator; a push is audited as
``privacy.policy.push`` with the actor ``cli:<user>`` and sent through the commands dispatcher
(``drivetrain serve`` or ``drivetrain worker dispatch`` delivers it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from drivetrain.commands.db import cli_actor, fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.output import Column, emit_json, print_table

if TYPE_CHECKING:  # imported when a command runs: keeps the CLI's start-up light
    from drivetrain.core.privacy_policy import MinimisationPolicy, RegionPolicy

policy_app = typer.Typer(
    help="The per-region minimisation policy (precision, categories off until consent): show "
    "it, or send it to the cars.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Regions = Annotated[
    list[str] | None,
    typer.Option(
        "--region",
        help="A region to show or send (repeatable; default: every region the policy names).",
        show_default=False,
    ),
]


def _policy() -> MinimisationPolicy:
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.privacy_policy import active_policy

    try:
        return active_policy()
    except DrivetrainError as e:
        fail(e, 2)


def _rules_text(region: RegionPolicy) -> str:
    return (
        "; ".join(
            f"{', '.join(r.signals)}: "
            + (f"{r.decimals} decimal(s)" if r.step is None else f"step {r.step:g}")
            for r in region.precision
        )
        or "as measured"
    )


@policy_app.command("show")
def show(regions: Regions = None, as_json: JsonOption = False) -> None:
    """Show the policy in force (the DRIVETRAIN_PRIVACY_POLICY file, else the shipped one)."""
    policy = _policy()
    chosen = regions or sorted(policy.regions)
    unknown = [r for r in chosen if r not in policy.regions]
    if unknown:
        fail(
            f"--region {unknown[0]!r}: the policy names no rules for it; it names "
            f"{', '.join(sorted(policy.regions))}",
            2,
        )
    if as_json:
        emit_json(
            {"source": policy.source, "regions": {r: policy.regions[r].to_dict() for r in chosen}}
        )
        return
    print_table(
        f"privacy policy ({policy.source})",
        [Column("region", "id"), Column("off until consent"), Column("precision")],
        (
            (
                r,
                ", ".join(sorted(policy.regions[r].default_off)) or "nothing",
                _rules_text(policy.regions[r]),
            )
            for r in chosen
        ),
    )


@policy_app.command("push")
def push(
    regions: Regions = None,
    tenant: Annotated[
        str, typer.Option("--tenant", help="The tenant whose cars get it.")
    ] = "default",
    as_json: JsonOption = False,
) -> None:
    """Send each region's rules to the tenant's cars there as the signed command
    privacy.policy (one job per region; the version is the push time, so a car refuses an
    older one). Each car applies it at once, keeps it across restarts and acknowledges it.
    """
    from drivetrain.cloud.privacy.policy_push import push_policy
    from drivetrain.core.errors import DrivetrainError

    policy = _policy()
    database = open_migrated_database(load_settings_or_exit())
    try:
        with database.session() as session:
            pushes = push_policy(session, policy, tenant=tenant, actor=cli_actor(), regions=regions)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json(
            {"source": policy.source, "tenant": tenant, "pushes": [p.to_dict() for p in pushes]}
        )
        return
    print_table(
        f"privacy policy {policy.source} sent (tenant {tenant!r})",
        [
            Column("region", "id"),
            Column("version", "number"),
            Column("job", "id"),
            Column("vehicles", "number"),
            Column("precision"),
        ],
        (
            (p.region, p.version, p.job_id, p.vehicles, _rules_text(policy.regions[p.region]))
            for p in pushes
        ),
    )
