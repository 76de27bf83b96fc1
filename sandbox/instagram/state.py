"""The stand-in's own records: each account's grant, authorization codes and access tokens with
the lifetimes Instagram documents, and the errors of the token endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sandbox.facebook.errors import GraphError

from .people import IgConsent, IgPerson

JsonDict = dict[str, Any]

CODE_SECONDS = 3600  # "valid for 1 hour and can only be used once"
SHORT_LIVED_SECONDS = 3600  # "short-lived and valid for 1 hour"
LONG_LIVED_SECONDS = 5_184_000  # 60 days, also after each refresh
REFRESH_MIN_AGE_SECONDS = 24 * 3600  # "at least 24 hours old but has not expired"


class TokenKind(StrEnum):
    SHORT = "SHORT"
    LONG = "LONG"


class ExchangeShape(StrEnum):
    """The two shapes Meta documents for the code exchange's answer."""

    # Business Login's page: {"data": [{"access_token", "user_id", "permissions": "a,b"}]}
    DATA = "data"
    # The endpoint's older reference: {"access_token", "user_id": <number>, "permissions": [...]}
    FLAT = "flat"


@dataclass
class Account:
    """One Instagram account as the stand-in knows it: who, the window's script, and what the
    account granted this app at its last login (empty until then, and after the app is removed)."""

    person: IgPerson
    consent: IgConsent
    scopes: list[str] = field(default_factory=list)


@dataclass
class Code:
    account_id: str
    client_id: str
    redirect_uri: str
    issued_at: float
    used: bool = False


@dataclass
class IgToken:
    """An Instagram User access token."""

    value: str
    account_id: str  # IgPerson.id
    kind: TokenKind
    issued_at: int
    expires_at: int
    # Instagram ended it early (app removed, password changed): every call with it fails with
    # this error.
    invalid: GraphError | None = None

    def __repr__(self) -> str:  # the value is a secret: never in a repr or a log line
        return (
            f"IgToken(account_id={self.account_id!r}, kind={self.kind.value}, "
            f"issued_at={self.issued_at}, expires_at={self.expires_at})"
        )


class TokenEndpointError(Exception):
    """An error of api.instagram.com/oauth/access_token, in its own flat shape
    ``{"error_type": "OAuthException", "code": <HTTP status>, "error_message": "..."}``."""

    def __init__(self, message: str, *, status: int = 400, error_type: str = "OAuthException"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type

    def body(self) -> JsonDict:
        return {"error_type": self.error_type, "code": self.status, "error_message": self.message}


class AuthorizeError(Exception):
    """The authorization window shows an error instead of redirecting (wrong app id, redirect
    URI not allowed, bad scopes). Instagram shows these as the same flat JSON shape."""
