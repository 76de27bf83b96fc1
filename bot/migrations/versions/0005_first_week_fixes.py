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
    # --- login states ---
    # --- console (revocations) ---
    # --- security (deletion replays) ---
    pass


def downgrade() -> None:
    # --- security (deletion replays) ---
    # --- console (revocations) ---
    # --- login states ---
    # --- recipients (outbox audience) ---
    pass
