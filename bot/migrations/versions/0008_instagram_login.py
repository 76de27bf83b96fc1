"""a second way in (issue 13): Instagram Login beside Facebook Login

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('brand', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('login_paths', sa.String(length=16), nullable=False, server_default='both')
        )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('path', sa.String(length=16), nullable=False, server_default='facebook')
        )
    with op.batch_alter_table('connection', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('path', sa.String(length=16), nullable=False, server_default='facebook')
        )


def downgrade() -> None:
    for table in ('connection', 'login_attempt', 'invitation', 'brand'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('login_paths' if table == 'brand' else 'path')
