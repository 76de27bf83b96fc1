"""The person in Instagram's authorization window and what they choose there: their Instagram
account (``IgPerson``) and what they do in the window (``IgConsent``), plus a few sample people
for the sandbox consent page."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class AccountType(StrEnum):
    """``account_type`` as ``/me`` answers it."""

    BUSINESS = "BUSINESS"
    MEDIA_CREATOR = "MEDIA_CREATOR"
    # Instagram's window asks a personal account to switch to a professional one before it lets
    # it log in; the stand-in lets such a person finish anyway and answers PERSONAL on /me, so the
    # bot's own "not a professional account" check can be exercised (see __init__.py).
    PERSONAL = "PERSONAL"


# The scope values of Business Login for Instagram (the old business_* names were retired on
# 27 January 2025). instagram_business_basic is required: the window does not let it be unticked.
BASIC_SCOPE = "instagram_business_basic"
INSIGHTS_SCOPE = "instagram_business_manage_insights"
SCOPES = (
    BASIC_SCOPE,
    INSIGHTS_SCOPE,
    "instagram_business_manage_comments",
    "instagram_business_content_publish",
    "instagram_business_manage_messages",
)


def _digits(seed: str, prefix: str, length: int) -> str:
    number = int(hashlib.sha256(seed.encode()).hexdigest()[:15], 16)
    return prefix + str(number).zfill(length)[-(length - len(prefix)) :]


@dataclass
class IgPerson:
    """An Instagram account logging in.

    Two ids, as on the real API: ``id`` is the app-scoped id (what the code exchange answers as
    ``user_id`` and ``/me`` as ``id``), ``user_id`` the Instagram professional account id (``/me``
    ``user_id``, the one webhooks and the Facebook path use, 1784...). Both address the account on
    the Graph host. Left empty, both are derived from the username."""

    username: str
    account_type: AccountType = AccountType.BUSINESS
    followers_count: int = 1200
    follows_count: int = 180
    media_count: int = 42
    name: str = ""
    biography: str = ""
    website: str = ""
    id: str = ""
    user_id: str = ""

    def __post_init__(self) -> None:
        self.account_type = AccountType(self.account_type)
        if not self.id:
            self.id = _digits(self.username, "2", 17)
        if not self.user_id:
            self.user_id = _digits(self.username, "17841", 17)


@dataclass
class IgConsent:
    """What the person does in the authorization window."""

    declined: set[str] = field(default_factory=set)  # optional permissions unticked
    cancel: bool = False  # presses "Cancel" / "Not now"
    # The window fails and redirects with this OAuth error instead (e.g. "server_error").
    error: str | None = None

    def __post_init__(self) -> None:
        if BASIC_SCOPE in self.declined:
            raise ValueError(f"{BASIC_SCOPE} is required: the window does not offer to untick it")


# The accounts offered on the sandbox consent page (any other username can be typed in).
SAMPLE_PEOPLE = (
    IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310),
    IgPerson("lena.paints", AccountType.MEDIA_CREATOR, name="Lena Paints", followers_count=4820),
    IgPerson("tiny.tom", AccountType.MEDIA_CREATOR, name="Tom", followers_count=64, media_count=3),
    IgPerson("max.private", AccountType.PERSONAL, name="Max", followers_count=230),
)
