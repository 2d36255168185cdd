"""insights: score runs, predictions, service centres, appointments, charging plans

Revision ID: insights_0001
Revises:
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "insights_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("insights",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"],
                                   name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="RESTRICT")


def upgrade() -> None:
    op.create_table(
        "insight_score_runs",
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("model_name", sa.String(48), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=False),
        sa.Column("data_start", _TS, nullable=False),
        sa.Column("data_end", _TS, nullable=False),
        sa.Column("vehicles", sa.Integer(), nullable=False),
        sa.Column("predictions", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        _tenant_fk("insight_score_runs"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_insight_score_runs")),
    )
    op.create_index("ix_insight_score_runs_tenant_id_started_at", "insight_score_runs",
                    ["tenant_id", "started_at"])

    op.create_table(
        "insight_predictions",
        sa.Column("prediction_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vehicle", sa.String(64), nullable=False),
        sa.Column("vin", sa.String(17), nullable=True),
        sa.Column("component", sa.String(32), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("window_start", _TS, nullable=False),
        sa.Column("window_end", _TS, nullable=False),
        sa.Column("observed_at", _TS, nullable=False),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["insight_score_runs.run_id"],
                                name=op.f("fk_insight_predictions_run_id_insight_score_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_insight_predictions")),
    )
    op.create_index("ix_insight_predictions_run_id_alert", "insight_predictions", ["run_id", "alert"])
    op.create_index("ix_insight_predictions_tenant_id_vin", "insight_predictions", ["tenant_id", "vin"])

    op.create_table(
        "insight_service_centres",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("centre_id", sa.String(48), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=False),
        sa.Column("stock", sa.Text(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        _tenant_fk("insight_service_centres"),
        sa.PrimaryKeyConstraint("tenant_id", "centre_id", name=op.f("pk_insight_service_centres")),
    )

    op.create_table(
        "insight_appointments",
        sa.Column("appointment_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("component", sa.String(32), nullable=False),
        sa.Column("part", sa.String(48), nullable=False),
        sa.Column("centre_id", sa.String(48), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("window_start", _TS, nullable=False),
        sa.Column("window_end", _TS, nullable=False),
        sa.Column("distance_km", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("command_id", sa.String(40), nullable=True),
        _tenant_fk("insight_appointments"),
        sa.PrimaryKeyConstraint("appointment_id", name=op.f("pk_insight_appointments")),
    )
    op.create_index("ix_insight_appointments_tenant_id_status", "insight_appointments",
                    ["tenant_id", "status"])
    op.create_index("ix_insight_appointments_tenant_id_vin", "insight_appointments",
                    ["tenant_id", "vin"])

    op.create_table(
        "insight_charging_plans",
        sa.Column("plan_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("site", sa.String(120), nullable=False),
        sa.Column("start_at", _TS, nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("site_limit_kw", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("baseline_cost", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        _tenant_fk("insight_charging_plans"),
        sa.PrimaryKeyConstraint("plan_id", name=op.f("pk_insight_charging_plans")),
    )
    op.create_index("ix_insight_charging_plans_tenant_id_created_at", "insight_charging_plans",
                    ["tenant_id", "created_at"])

    op.create_table(
        "insight_charging_schedules",
        sa.Column("plan_id", sa.String(40), nullable=False),
        sa.Column("vin", sa.String(17), nullable=False),
        sa.Column("power_kw", sa.Text(), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("baseline_cost", sa.Float(), nullable=False),
        sa.Column("shortfall_kwh", sa.Float(), nullable=False),
        sa.Column("command_id", sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["insight_charging_plans.plan_id"],
                                name=op.f("fk_insight_charging_schedules_plan_id_insight_charging_plans"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("plan_id", "vin", name=op.f("pk_insight_charging_schedules")),
    )


def downgrade() -> None:
    for table in ("insight_charging_schedules", "insight_charging_plans", "insight_appointments",
                  "insight_service_centres", "insight_predictions", "insight_score_runs"):
        op.drop_table(table)
