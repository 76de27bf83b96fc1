"""The storage layer: small repositories composed around one database (see `bot.store.db`).

The names callers need are importable from here.
"""

from bot.store.api_keys import BrandConnection, Caller, NewApiKey
from bot.store.brands import LinkProblem
from bot.store.console import Created, Funnel, NewInvitation, row_id
from bot.store.db import Database
from bot.store.events import EventKind
from bot.store.health import BreakageDetails, CheckResult, DueCheck, Health
from bot.store.invitations import BindProblem, Bound
from bot.store.lease import LeaderLease
from bot.store.logins import (
    ConnectionRecord,
    LoginTicket,
    PendingConfirmation,
    StateProblem,
)
from bot.store.outbox import Outgoing
from bot.store.privacy import Affected, Notices

__all__ = [
    "Affected",
    "BindProblem",
    "Bound",
    "BrandConnection",
    "BreakageDetails",
    "Caller",
    "CheckResult",
    "ConnectionRecord",
    "Created",
    "Database",
    "DueCheck",
    "EventKind",
    "Funnel",
    "Health",
    "LeaderLease",
    "LinkProblem",
    "LoginTicket",
    "NewApiKey",
    "NewInvitation",
    "Notices",
    "Outgoing",
    "PendingConfirmation",
    "StateProblem",
    "row_id",
]
