"""connections kept alive (issue 11): page token, health, checks, renewal

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import bot.models  # noqa: F401


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('connection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('page_token_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                'health',
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default='healthy',
            )
        )
        batch_op.add_column(
            sa.Column('health_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.add_column(
            sa.Column('health_changed_at', bot.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column('checked_at', bot.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column('next_check_at', bot.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('renewal_stage', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('renewed_at', bot.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index('ix_connection_next_check_at', ['next_check_at'], unique=False)
    # --- login_attempt.renewal (H2: renewal logins, the Renew button) ---
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('renewal', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # --- end login_attempt.renewal ---
    # Connections ended before this revision are disconnected for the health checks too.
    op.execute(
        "UPDATE connection SET health = 'disconnected' WHERE status <> 'active'"
    )


def downgrade() -> None:
    # --- login_attempt.renewal (H2) ---
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.drop_column('renewal')
    # --- end login_attempt.renewal ---
    with op.batch_alter_table('connection', schema=None) as batch_op:
        batch_op.drop_index('ix_connection_next_check_at')
        batch_op.drop_column('renewed_at')
        batch_op.drop_column('renewal_stage')
        batch_op.drop_column('next_check_at')
        batch_op.drop_column('checked_at')
        batch_op.drop_column('health_changed_at')
        batch_op.drop_column('health_reason')
        batch_op.drop_column('health')
        batch_op.drop_column('page_token_encrypted')
