"""What a person does in the sandbox login dialog, as data: the form's choices become the
`FbUser` (their Pages and Instagram accounts, in the state they chose) and the `Consent` (what they
tick and press) that the Graph stand-in plays, plus a Facebook fault to simulate.

Every verdict of `bot.verdict.Outcome` can be produced from here; `Trouble` covers those that come
from Facebook's side rather than from the person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.verdict import is_valid_handle, normalize_handle
from sandbox.facebook import Consent, FbPage, FbUser, GraphStandin, IgAccount

PAGE_SLOTS = 2
_FULL_CONTROL = ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]
_DEFAULT_FOLLOWERS = 12_480
_MAX_FOLLOWERS = 10**9
_MAX_NAME = 80


class InstagramLink(StrEnum):
    INVITED = "invited"  # instagram_business_account is the invited account
    OTHER = "other"  # instagram_business_account is another account
    HALF = "half"  # only connected_instagram_account (Accounts Center), no business link
    NONE = "none"


class Role(StrEnum):
    FULL = "full"  # the tasks of full control
    NONE = "none"  # no task that can grant Instagram access


class Action(StrEnum):
    CONTINUE = "continue"
    CANCEL = "cancel"
    DEVELOPMENT_MODE = "development_mode"  # the app is not live and the person has no role on it


class Trouble(StrEnum):
    """Facebook's side failing, each mapped to what the stand-in can really do."""

    NONE = "none"
    DIALOG_ERROR = "dialog_error"  # the dialog redirects with error=server_error
    CODE_EXPIRED = "code_expired"  # the code exchange answers "code has expired"
    GRAPH_DOWN = "graph_down"  # Graph answers HTTP 500, code 2
    RATE_LIMITED = "rate_limited"  # Graph answers code 4, the app's rate limit
    SESSION_INVALIDATED = "session_invalidated"  # debug_token: invalid, subcode 460


TROUBLE_LABELS: dict[Trouble, str] = {
    Trouble.NONE: "Nothing goes wrong",
    Trouble.DIALOG_ERROR: "The dialog fails and redirects with error=server_error",
    Trouble.CODE_EXPIRED: "The one-time code has expired when the bot exchanges it",
    Trouble.GRAPH_DOWN: "The Graph API is down (HTTP 500) while the bot checks the login",
    Trouble.RATE_LIMITED: "The Graph API rate-limits the app (code 4)",
    Trouble.SESSION_INVALIDATED: "Facebook invalidates the session right after the login",
}


@dataclass
class PageSetup:
    """One of the person's Facebook Pages, as the sandbox lets them set it up."""

    name: str
    shared: bool = True  # ticked in the dialog's Page picker
    published: bool = True
    role: Role = Role.FULL
    business_owned: bool = False
    instagram: InstagramLink = InstagramLink.NONE
    other_username: str = ""
    instagram_shared: bool = True  # ticked in the dialog's Instagram account picker
    followers: int = _DEFAULT_FOLLOWERS
    # A brand-new professional account: Instagram has no insights and no posts for it yet.
    new_account: bool = False


@dataclass
class LoginChoice:
    action: Action
    granted: set[str]
    pages: list[PageSetup]
    trouble: Trouble = Trouble.NONE
    handle: str = ""


@dataclass(frozen=True)
class FacebookAccount:
    """The made-up Facebook account of a playground person."""

    id: str
    name: str


@dataclass
class Login:
    """What the Graph stand-in plays for one visit of the dialog."""

    user: FbUser
    consent: Consent
    trouble: Trouble
    # Instagram accounts set up as brand-new ones (no insights, no posts yet).
    new_accounts: tuple[str, ...] = ()


def facebook_account(telegram_id: int | None, name: str | None) -> FacebookAccount:
    # App-scoped user ids are long numbers; derive a stable one per playground person.
    return FacebookAccount(id=str(10_000_000_000_000 + (telegram_id or 0)), name=name or "You")


def default_pages(person_name: str, handle: str) -> list[PageSetup]:
    """The happy path: a published Page with full control, linked to the invited account, and a
    second Page linked to another account (so that choosing the wrong Page or account in the
    dialog has a visible effect), both shared."""
    words = [w for w in handle.replace("_", ".").split(".") if w]
    main_name = " ".join(w.capitalize() for w in words) or f"{person_name}'s Page"
    return [
        PageSetup(
            name=main_name,
            instagram=InstagramLink.INVITED,
            other_username=f"{handle[:26]}_old" if handle else "old.account",
        ),
        PageSetup(
            name="Neighbourhood Club",
            instagram=InstagramLink.OTHER,
            other_username="neighbourhood.club",
            followers=860,
        ),
    ]


def _flag(form: Mapping[str, str], name: str) -> bool:
    return name in form


def _choice(form: Mapping[str, str], name: str, kind: type[StrEnum], default: StrEnum) -> StrEnum:
    try:
        return kind(form.get(name, default.value))
    except ValueError:
        raise ValueError(f"{name} must be one of {', '.join(m.value for m in kind)}") from None


def _number(form: Mapping[str, str], name: str, default: int) -> int:
    raw = form.get(name, "").replace(",", "").replace(".", "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > _MAX_FOLLOWERS:
        raise ValueError(f"{name} must be a whole number of followers")
    return int(raw)


def parse_form(form: Mapping[str, str], granted: list[str], requested: list[str]) -> LoginChoice:
    """The submitted sandbox form. ``granted`` are the ticked permission checkboxes (a form
    repeats that field); only requested permissions count. Raises ValueError for a value no
    form of ours sends."""
    action = _choice(form, "action", Action, Action.CONTINUE)
    trouble = _choice(form, "trouble", Trouble, Trouble.NONE)
    handle = normalize_handle(form.get("handle", ""))
    if handle and not is_valid_handle(handle):
        raise ValueError("handle is not a valid Instagram username")
    pages = []
    for slot in range(PAGE_SLOTS):
        prefix = f"page-{slot}-"
        other = normalize_handle(form.get(prefix + "other", ""))
        link = _choice(form, prefix + "instagram", InstagramLink, InstagramLink.NONE)
        if link is InstagramLink.OTHER and not is_valid_handle(other):
            raise ValueError(f"{prefix}other must be a valid Instagram username")
        pages.append(
            PageSetup(
                name=(form.get(prefix + "name", "").strip() or f"Page {slot + 1}")[:_MAX_NAME],
                shared=_flag(form, prefix + "shared"),
                published=_flag(form, prefix + "published"),
                role=Role(_choice(form, prefix + "role", Role, Role.FULL)),
                business_owned=_flag(form, prefix + "business"),
                instagram=InstagramLink(link),
                other_username=other,
                instagram_shared=_flag(form, prefix + "ig-shared"),
                followers=_number(form, prefix + "followers", _DEFAULT_FOLLOWERS),
                new_account=_flag(form, prefix + "new"),
            )
        )
    return LoginChoice(
        action=Action(action),
        granted={scope for scope in granted if scope in requested},
        pages=pages,
        trouble=Trouble(trouble),
        handle=handle,
    )


def instagram_id(username: str) -> str:
    """Instagram user ids are long numbers starting 1784…; derive a stable one per username."""
    digest = int(hashlib.sha256(username.encode()).hexdigest()[:12], 16)
    return str(17_841_400_000_000_000 + digest % 10**11)


def build_login(choice: LoginChoice, account: FacebookAccount, requested: list[str]) -> Login:
    """The person and their consent for the Graph stand-in."""
    pages: list[FbPage] = []
    shared_pages: set[str] = set()
    shared_instagram: set[str] = set()
    new_accounts: list[str] = []
    for slot, setup in enumerate(choice.pages):
        page_id = str(int(account.id) * 10 + slot + 1)
        invited = IgAccount(
            id=instagram_id(choice.handle),
            username=choice.handle,
            followers_count=setup.followers,
        )
        business: IgAccount | None = None
        connected: IgAccount | None = None
        if setup.instagram is InstagramLink.INVITED and choice.handle:
            business = invited
        elif setup.instagram is InstagramLink.OTHER:
            business = IgAccount(
                id=instagram_id(setup.other_username),
                username=setup.other_username,
                followers_count=setup.followers,
            )
        elif setup.instagram is InstagramLink.HALF and choice.handle:
            connected = invited
        pages.append(
            FbPage(
                id=page_id,
                name=setup.name,
                is_published=setup.published,
                tasks=list(_FULL_CONTROL) if setup.role is Role.FULL else [],
                instagram=business,
                connected_instagram=connected,
                business_owned=setup.business_owned,
            )
        )
        if setup.shared:
            shared_pages.add(page_id)
        if business is not None and setup.instagram_shared:
            shared_instagram.add(business.id)
        if business is not None and setup.new_account:
            new_accounts.append(business.id)
    consent = Consent(
        declined={scope for scope in requested if scope not in choice.granted},
        pages=shared_pages,
        instagram_accounts=shared_instagram,
        cancel=choice.action is Action.CANCEL,
        app_not_live=choice.action is Action.DEVELOPMENT_MODE,
        error="server_error" if choice.trouble is Trouble.DIALOG_ERROR else None,
        session_invalidated=choice.trouble is Trouble.SESSION_INVALIDATED,
    )
    user = FbUser(id=account.id, name=account.name, pages=pages)
    return Login(user, consent, choice.trouble, tuple(new_accounts))


def arm_trouble(graph: GraphStandin, trouble: Trouble) -> None:
    """Faults on the Graph calls the bot makes after the redirect, with Meta's codes and
    wording. Armed only once the dialog has handed out a code, so they hit this login."""
    if trouble is Trouble.CODE_EXPIRED:
        graph.fail_next(
            "oauth/access_token",
            code=100,
            subcode=36007,
            message="This authorization code has expired.",
        )
    elif trouble is Trouble.GRAPH_DOWN:
        graph.fail_next(
            "/me/accounts",
            code=2,
            message="An unexpected error has occurred. Please retry your request later.",
        )
    elif trouble is Trouble.RATE_LIMITED:
        graph.fail_next("/me/permissions", code=4, message="(#4) Application request limit reached")
