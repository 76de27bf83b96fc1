"""first week fixes (issue 9): recipients, login states, revocations, deletion replays

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import bot.models  # noqa: F401


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Each section belongs to one part of the work; add to your own section only.
    # --- recipients (outbox audience) ---
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('brand_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('manager_id', sa.BigInteger(), nullable=True))
    # --- login states ---
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('superseded_at', bot.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('state_sealed', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('button_chat_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('button_message_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('browser_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('confirm_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pending_sealed', sa.Text(), nullable=True))
        batch_op.create_index('ix_login_attempt_confirm_hash', ['confirm_hash'], unique=False)
    # --- console (revocations) ---
    op.create_table('revocation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invitation_id', sa.Integer(), nullable=True),
    sa.Column('requested_by', sa.BigInteger(), nullable=True),
    sa.Column('token_encrypted', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_try_at', bot.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', bot.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('revocation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revocation_invitation_id'), ['invitation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_revocation_next_try_at'), ['next_try_at'], unique=False)
    # Tokens of withdrawn connections whose revocation Facebook never confirmed (the old
    # "try again later"): the periodic job retries them from now on.
    now = bot.models.utcnow()
    op.execute(
        sa.text(
            "INSERT INTO revocation (invitation_id, token_encrypted, attempts, next_try_at, created_at)"
            " SELECT invitation_id, token_encrypted, 0, :now, :now FROM connection"
            " WHERE status = 'revoked' AND token_encrypted IS NOT NULL"
        ).bindparams(sa.bindparam('now', now, type_=bot.models.UTCDateTime(timezone=True)))
    )
    op.execute(
        "UPDATE connection SET token_encrypted = NULL"
        " WHERE status = 'revoked' AND token_encrypted IS NOT NULL"
    )
    # --- security (deletion replays) ---
    with op.batch_alter_table('deletion_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issued_at', sa.BigInteger(), nullable=True))
        batch_op.create_index(
            'ix_deletion_request_replay', ['facebook_user_id', 'issued_at'], unique=True
        )
    # --- conversation ---
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('step_repeated_at', bot.models.UTCDateTime(timezone=True), nullable=True)
        )
    # --- manager texts (event facts) ---
    with op.batch_alter_table('invitation_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('facts', sa.Text(), nullable=True))
    # --- walk (influencer: re-shown steps) ---
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('step_message_id', sa.BigInteger(), nullable=True))
    pass


def downgrade() -> None:
    # --- walk (influencer: re-shown steps) ---
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_column('step_message_id')
    # --- manager texts (event facts) ---
    with op.batch_alter_table('invitation_event', schema=None) as batch_op:
        batch_op.drop_column('facts')
    # --- security (deletion replays) ---
    with op.batch_alter_table('deletion_request', schema=None) as batch_op:
        batch_op.drop_index('ix_deletion_request_replay')
        batch_op.drop_column('issued_at')
    # --- console (revocations) ---
    with op.batch_alter_table('revocation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revocation_next_try_at'))
        batch_op.drop_index(batch_op.f('ix_revocation_invitation_id'))
    op.drop_table('revocation')
    # --- login states ---
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempt_confirm_hash')
        batch_op.drop_column('pending_sealed')
        batch_op.drop_column('confirm_hash')
        batch_op.drop_column('browser_hash')
        batch_op.drop_column('button_message_id')
        batch_op.drop_column('button_chat_id')
        batch_op.drop_column('state_sealed')
        batch_op.drop_column('superseded_at')
    # --- recipients (outbox audience) ---
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('manager_id')
        batch_op.drop_column('brand_id')
        batch_op.drop_column('audience')
    # --- conversation ---
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_column('step_repeated_at')
    pass
