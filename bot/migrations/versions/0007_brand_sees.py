"""what the brand sees (issue 12): profile snapshots, webhooks, read API keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import bot.models  # noqa: F401


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('brand', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('webhook_url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True)
        )
        batch_op.add_column(sa.Column('webhook_secret_sealed', sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column('webhook_set_at', bot.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        'profile_snapshot',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('connection_id', sa.Integer(), nullable=False),
        sa.Column('fetched_at', bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('followers_count', sa.Integer(), nullable=True),
        sa.Column('reach_30d', sa.Integer(), nullable=True),
        sa.Column('engagement_per_mille', sa.Integer(), nullable=True),
        sa.Column('data', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['connection_id'], ['connection.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('connection_id'),
    )
    op.create_table(
        'webhook_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('brand_id', sa.Integer(), nullable=False),
        sa.Column('invitation_id', sa.Integer(), nullable=True),
        sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('due_at', bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_at', bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', bot.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.ForeignKeyConstraint(['brand_id'], ['brand.id']),
        sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id'),
    )
    op.create_index('ix_webhook_delivery_due', 'webhook_delivery', ['status', 'due_at'])
    op.create_index('ix_webhook_delivery_brand_id', 'webhook_delivery', ['brand_id'])
    op.create_index('ix_webhook_delivery_invitation_id', 'webhook_delivery', ['invitation_id'])
    op.create_table(
        'api_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('brand_id', sa.Integer(), nullable=False),
        sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('created_by', sa.BigInteger(), nullable=False),
        sa.Column('created_at', bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', bot.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', bot.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['brand_id'], ['brand.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_hash'),
    )
    op.create_index('ix_api_key_brand_id', 'api_key', ['brand_id'])


def downgrade() -> None:
    op.drop_index('ix_api_key_brand_id', table_name='api_key')
    op.drop_table('api_key')
    op.drop_index('ix_webhook_delivery_invitation_id', table_name='webhook_delivery')
    op.drop_index('ix_webhook_delivery_brand_id', table_name='webhook_delivery')
    op.drop_index('ix_webhook_delivery_due', table_name='webhook_delivery')
    op.drop_table('webhook_delivery')
    op.drop_table('profile_snapshot')
    with op.batch_alter_table('brand', schema=None) as batch_op:
        batch_op.drop_column('webhook_set_at')
        batch_op.drop_column('webhook_secret_sealed')
        batch_op.drop_column('webhook_url')
