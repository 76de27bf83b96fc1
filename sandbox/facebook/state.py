"""The stand-in's own records: each person's grants, authorization codes, access tokens (their
lifetimes as Meta documents them), and injected faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import GraphError
from .people import Consent, FbUser

JsonDict = dict[str, Any]

SHORT_LIVED_SECONDS = (3600, 7200)  # Meta: "about one to two hours"
LONG_LIVED_SECONDS = 5_184_000  # about 60 days
DATA_ACCESS_SECONDS = 90 * 24 * 3600  # data access expires 90 days after the person was active
APPSECRET_TIME_WINDOW = 300  # the time-stamped appsecret_proof is valid for 5 minutes


@dataclass
class Person:
    user: FbUser
    consent: Consent
    permissions: dict[str, str] = field(default_factory=dict)  # name → "granted" | "declined"
    selected_pages: set[str] | None = None
    selected_instagram: set[str] | None = None
    active_at: float = 0.0


@dataclass
class Code:
    user_id: str
    redirect_uri: str
    issued_at: float
    used: bool = False


@dataclass
class Token:
    value: str
    user_id: str
    kind: str  # "USER" | "PAGE"
    issued_at: int
    expires_at: int  # 0: never (Page tokens from a long-lived user token)
    page_id: str | None = None
    revoked: bool = False
    # Facebook ended it early (password changed, logged out, Page role lost): every call with it
    # fails with this error until a new login.
    invalid: GraphError | None = None


@dataclass
class Fault:
    path_contains: str
    remaining: int


@dataclass
class InjectedError(Fault):
    error: GraphError


FaultT = TypeVar("FaultT", bound=Fault)
