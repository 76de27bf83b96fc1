"""The people in the dialog and what they own and choose: Facebook users, their Pages, the
Instagram accounts linked to them, and the consent a person gives in the login dialog."""

from __future__ import annotations

from dataclasses import dataclass, field

# Permissions that Facebook Login lets a person grant for selected Pages / Instagram accounts
# only; debug_token lists the chosen ids as `target_ids`.
PAGE_SCOPES = frozenset(
    {
        "pages_show_list",
        "pages_read_engagement",
        "pages_manage_metadata",
        "pages_read_user_content",
        "pages_manage_posts",
        "pages_manage_engagement",
        "pages_messaging",
        "read_insights",
    }
)
INSTAGRAM_SCOPES = frozenset(
    {
        "instagram_basic",
        "instagram_manage_insights",
        "instagram_manage_comments",
        "instagram_content_publish",
        "instagram_manage_messages",
    }
)


@dataclass
class IgAccount:
    """A professional (Business or Creator) Instagram account."""

    id: str
    username: str
    followers_count: int = 1200
    name: str = ""
    biography: str = ""
    follows_count: int = 180
    media_count: int = 42
    website: str = ""


@dataclass
class FbPage:
    id: str
    name: str
    is_published: bool = True
    tasks: list[str] = field(
        default_factory=lambda: ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]
    )
    instagram: IgAccount | None = None  # served as instagram_business_account {id, username}
    # Served as connected_instagram_account: alone, it is a half-finished link that the API
    # cannot use (the account is not reachable as an IG User).
    connected_instagram: IgAccount | None = None
    business_owned: bool = False  # hidden from /me/accounts unless business_management granted


@dataclass
class FbUser:
    id: str
    name: str
    pages: list[FbPage]


@dataclass
class Consent:
    """What the person does in the dialog."""

    declined: set[str] = field(default_factory=set)  # permissions unticked
    pages: set[str] | None = None  # ids of the Pages ticked in the Page picker; None = all
    cancel: bool = False  # presses Cancel
    app_not_live: bool = False  # the app is in Development mode and the person has no role
    # Ids of the accounts ticked in the dialog's separate Instagram account picker; None = all.
    instagram_accounts: set[str] | None = None
    # The dialog fails and redirects with this OAuth error instead (e.g. "server_error").
    error: str | None = None
    # Facebook invalidates the session right after the login (e.g. a password change): the token
    # still exchanges, but debug_token reports it invalid (code 190, subcode 460).
    session_invalidated: bool = False
