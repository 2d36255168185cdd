"""commerce: catalogs, accounts, subscriptions, invoices, ledger, payment and usage events,
entitlements

Revision ID: commerce_0001
Revises:
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "commerce_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("commerce",)
depends_on: str | Sequence[str] | None = "infra_0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('commerce_accounts',
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('payment_method', sa.String(length=64), nullable=False),
    sa.Column('updated_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_accounts_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('tenant_id', 'account_id', name=op.f('pk_commerce_accounts'))
    )
    op.create_table('commerce_catalogs',
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_catalogs_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('tenant_id', 'version', name=op.f('pk_commerce_catalogs'))
    )
    op.create_table('commerce_entitlements',
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('vin', sa.String(length=17), nullable=False),
    sa.Column('feature', sa.String(length=48), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('token_id', sa.String(length=32), nullable=False),
    sa.Column('token', sa.Text(), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=True),
    sa.Column('issued_at', _TS, nullable=False),
    sa.Column('expires_at', _TS, nullable=False),
    sa.Column('grace_s', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_entitlements_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('tenant_id', 'vin', 'feature', name=op.f('pk_commerce_entitlements'))
    )
    op.create_table('commerce_invoices',
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=True),
    sa.Column('vin', sa.String(length=17), nullable=True),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('net_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('paid_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_rate', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('issued_at', _TS, nullable=False),
    sa.Column('paid_at', _TS, nullable=True),
    sa.Column('payment_reference', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_invoices_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('invoice_id', name=op.f('pk_commerce_invoices'))
    )
    op.create_index(op.f('ix_commerce_invoices_status'), 'commerce_invoices', ['status'], unique=False)
    op.create_index(op.f('ix_commerce_invoices_subscription_id'), 'commerce_invoices', ['subscription_id'], unique=False)
    op.create_index(op.f('ix_commerce_invoices_tenant_id'), 'commerce_invoices', ['tenant_id'], unique=False)
    op.create_table('commerce_jobs',
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('wire_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_jobs_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_commerce_jobs'))
    )
    op.create_table('commerce_ledger',
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('transaction_id', sa.String(length=40), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('memo', sa.String(length=200), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_ledger_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('entry_id', name=op.f('pk_commerce_ledger'))
    )
    op.create_index('ix_commerce_ledger_tenant_account', 'commerce_ledger', ['tenant_id', 'account'], unique=False)
    op.create_index(op.f('ix_commerce_ledger_transaction_id'), 'commerce_ledger', ['transaction_id'], unique=False)
    op.create_table('commerce_payment_events',
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('received_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_payment_events_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('tenant_id', 'provider', 'event_id', name=op.f('pk_commerce_payment_events'))
    )
    op.create_table('commerce_subscriptions',
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('vin', sa.String(length=17), nullable=True),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('offer_id', sa.String(length=64), nullable=False),
    sa.Column('catalog_version', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('period_start', _TS, nullable=False),
    sa.Column('period_end', _TS, nullable=True),
    sa.Column('trial_end', _TS, nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('dunning_attempts', sa.Integer(), nullable=False),
    sa.Column('next_retry_at', _TS, nullable=True),
    sa.Column('paused_at', _TS, nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.Column('updated_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_subscriptions_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('subscription_id', name=op.f('pk_commerce_subscriptions'))
    )
    op.create_index(op.f('ix_commerce_subscriptions_status'), 'commerce_subscriptions', ['status'], unique=False)
    op.create_index(op.f('ix_commerce_subscriptions_tenant_id'), 'commerce_subscriptions', ['tenant_id'], unique=False)
    op.create_index(op.f('ix_commerce_subscriptions_vin'), 'commerce_subscriptions', ['vin'], unique=False)
    op.create_table('commerce_usage',
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('used_at', _TS, nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.tenant_id'], name=op.f('fk_commerce_usage_tenant_id_tenants'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('tenant_id', 'event_id', name=op.f('pk_commerce_usage'))
    )
    op.create_index(op.f('ix_commerce_usage_subscription_id'), 'commerce_usage', ['subscription_id'], unique=False)
    op.create_table('commerce_invoice_lines',
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('feature', sa.String(length=48), nullable=True),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit_minor', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('partner', sa.String(length=64), nullable=True),
    sa.Column('partner_share_minor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['commerce_invoices.invoice_id'], name=op.f('fk_commerce_invoice_lines_invoice_id_commerce_invoices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('invoice_id', 'line_no', name=op.f('pk_commerce_invoice_lines'))
    )


def downgrade() -> None:
    op.drop_table('commerce_invoice_lines')
    op.drop_table('commerce_usage')
    op.drop_table('commerce_subscriptions')
    op.drop_table('commerce_payment_events')
    op.drop_table('commerce_ledger')
    op.drop_table('commerce_jobs')
    op.drop_table('commerce_invoices')
    op.drop_table('commerce_entitlements')
    op.drop_table('commerce_catalogs')
    op.drop_table('commerce_accounts')
