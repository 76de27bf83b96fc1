"""What the influencer and the manager see: text from the catalogs plus the buttons, for each
step and result. No I/O here; handlers and notifications send what these return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.buttons import Action, Press, Renew, ShowProfile
from bot.fit import join_capped
from bot.i18n import Html, Texts
from bot.models import Invitation, Step
from bot.verdict import Outcome, Verdict

# Pages or Instagram accounts named in one message: a Facebook user may have hundreds of Pages,
# and the whole list would not fit in a message (nor help anyone); the rest is "and N more".
MAX_LISTED = 10


@dataclass(frozen=True)
class Screen:
    text: str
    keyboard: InlineKeyboardMarkup | None = None


def _button(
    t: Texts, key: str, action: Action, invite: Invitation, step: Step
) -> InlineKeyboardButton:
    assert invite.id is not None
    return InlineKeyboardButton(t.plain(key), callback_data=Press(action, invite.id, step).pack())


def _question(t: Texts, invite: Invitation, step: Step, text: str) -> Screen:
    return Screen(
        text,
        InlineKeyboardMarkup(
            [
                [
                    _button(t, "button.yes", Action.YES, invite, step),
                    _button(t, "button.no", Action.NO, invite, step),
                ],
                [_button(t, "button.how", Action.HOW, invite, step)],
            ]
        ),
    )


def resume_keyboard(t: Texts, invite: Invitation) -> InlineKeyboardMarkup:
    """ "Continue": shows the step the influencer is at, whenever they come back."""
    return InlineKeyboardMarkup(
        [[_button(t, "button.resume", Action.RESUME, invite, Step(invite.step))]]
    )


def permission_list(t: Texts, scopes: tuple[str, ...] | list[str]) -> Html:
    lines = []
    for scope in scopes:
        key = f"permission.{scope}"
        words = t(key) if t.has(key) else scope
        lines.append(t("permission.line", name=scope, words=words))
    return Html("\n".join(lines))


def welcome(
    t: Texts, invite: Invitation, *, first_name: str, platform: str, brand: str | None = None
) -> Screen:
    # The brand is who asks; the manager's name makes it personal.
    inviter = invite.inviter_name
    if brand and brand != platform:
        inviter = f"{invite.inviter_name} ({brand})"
    return Screen(
        t(
            "welcome.text",
            name=first_name,
            inviter=inviter,
            platform=platform,
            handle=invite.handle,
        )
    )


def step_screen(t: Texts, invite: Invitation, *, platform: str) -> Screen | None:
    """The question of the step the influencer is at (None at the login step or when done)."""
    if invite.step == Step.PAGE_PUBLIC:
        return _question(t, invite, Step.PAGE_PUBLIC, t("check.public.question", platform=platform))
    if invite.step == Step.PAGE_LINKED:
        return _question(
            t, invite, Step.PAGE_LINKED, t("check.linked.question", handle=invite.handle)
        )
    return None


def instructions(t: Texts, invite: Invitation, *, answer: Action) -> Screen:
    """After "no": how to fix it, and a "done" button. After "how": how to check, and yes/no."""
    topic = "public" if invite.step == Step.PAGE_PUBLIC else "linked"
    step = Step(invite.step)
    if answer == Action.NO:
        return Screen(
            t(f"check.{topic}.fix", handle=invite.handle),
            InlineKeyboardMarkup([[_button(t, "button.done", Action.DONE, invite, step)]]),
        )
    return _question(t, invite, step, t(f"check.{topic}.how", handle=invite.handle))


def login(
    t: Texts, invite: Invitation, *, url: str, scopes: tuple[str, ...], platform: str, minutes: int
) -> Screen:
    assert invite.id is not None
    return Screen(
        t(
            "login.text",
            handle=invite.handle,
            platform=platform,
            minutes=minutes,
            permissions=permission_list(t, scopes),
        ),
        InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(t.plain("button.login"), url=url)],
                [_button(t, "button.new_link", Action.NEW_LINK, invite, Step.LOGIN)],
            ]
        ),
    )


# --- renewing a kept connection (the Renew button; issue 11) ---------------------------------


def renewal_keyboard(t: Texts, invitation_id: int, label_key: str) -> InlineKeyboardMarkup:
    """One button asking for a fresh renewal login (`bot.buttons.Renew`)."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(t.plain(label_key), callback_data=Renew(invitation_id).pack())]]
    )


def renewal_login(
    t: Texts,
    invite: Invitation,
    *,
    url: str,
    platform: str,
    minutes: int,
    reconnect: bool = False,
) -> Screen:
    """The renewal's login button: why Facebook asks, how long it takes, what to select;
    `reconnect`: the connection broke, and the login mends it (worded as a reconnect)."""
    assert invite.id is not None
    key = "renew.reconnect_login" if reconnect else "renewal.login"
    return Screen(
        t(key, handle=invite.handle, platform=platform, minutes=minutes),
        InlineKeyboardMarkup(
            [
                # Not "Renew access" again: that was the button which brought this message.
                [InlineKeyboardButton(t.plain("button.login"), url=url)],
                [
                    InlineKeyboardButton(
                        t.plain("button.new_link"), callback_data=Renew(invite.id).pack()
                    )
                ],
            ]
        ),
    )


def long_date(t: Texts, when: datetime) -> str:
    """A day as people write it: 27 February 2027, 27. Februar 2027."""
    months = t.plain("renewal.months").split(",")
    return t.plain(
        "renewal.date", day=when.day, month=months[when.month - 1].strip(), year=when.year
    )


def renewed(
    t: Texts,
    verdict: Verdict,
    *,
    platform: str,
    until: datetime | None,
    reconnect: bool = False,
    invitation_id: int | None = None,
) -> Screen:
    """The renewal worked: the same account through the same Page, access until when;
    `reconnect`: it mended a broken connection (worded as connected again, with the way to
    what the brand sees once more)."""
    assert verdict.instagram is not None and verdict.page is not None
    values = {"username": verdict.instagram.username, "page": verdict.page.name}
    key = "renew.reconnected" if reconnect else "renewal.renewed"
    keyboard = (
        InlineKeyboardMarkup([[shared_button(t, invitation_id)]])
        if reconnect and invitation_id is not None
        else None
    )
    if until is None:
        return Screen(t(f"{key}_no_date", platform=platform, **values), keyboard)
    return Screen(t(key, platform=platform, date=long_date(t, until), **values), keyboard)


def shared_button(t: Texts, invitation_id: int) -> InlineKeyboardButton:
    """Transparency (issue 12): one tap to exactly what the brand sees (/shared)."""
    return InlineKeyboardButton(
        t.plain("shared.button"), callback_data=ShowProfile(invitation_id).pack()
    )


def access_runs(t: Texts, *, handle: str, platform: str, until: datetime | None) -> Screen:
    """A Renew press while the connection works and access runs long enough: nothing to
    renew, and until when access runs."""
    if until is None:
        return Screen(t("renew.not_due_no_date", handle=handle, platform=platform))
    return Screen(t("renew.not_due", handle=handle, platform=platform, date=long_date(t, until)))


def renewal_failed(
    t: Texts,
    invite: Invitation,
    verdict: Verdict,
    *,
    platform: str,
    kept_page: str,
    kept_username: str,
    reconnect: bool = False,
) -> Screen:
    """A renewal login that did not renew: exactly why (the first login's reasons and fixes),
    that the connection stays as it was (`reconnect`: still interrupted), and a retry."""
    assert invite.id is not None
    if verdict.connected:
        # Connected, but not the kept Page and account: that one is not replaced.
        assert verdict.page is not None and verdict.instagram is not None
        reason = t(
            "renewal.other_connection",
            page=verdict.page.name,
            username=verdict.instagram.username,
            kept_page=kept_page,
            kept_username=kept_username,
            inviter=invite.inviter_name,
        )
    else:
        reason = _reason(t, verdict, invite, platform)
        fix = _detail(t, f"verdict.{verdict.outcome}.fix", verdict, invite, platform)
        if fix:
            reason = Html(reason + "\n\n" + t("result.fix_heading") + "\n" + fix)
    key = "renew.reconnect_failed" if reconnect else "renewal.failed"
    text = t(key, reason=reason, handle=kept_username, page=kept_page)
    return Screen(text, renewal_keyboard(t, invite.id, "button.retry"))


def count(t: Texts, number: int) -> str:
    """A count as the reader writes it: 12,345 in English, 12.345 in German."""
    return f"{number:,}".replace(",", t.plain("number.thousands"))


def verdict_for_influencer(
    t: Texts,
    invite: Invitation,
    verdict: Verdict,
    *,
    platform: str,
    followers: int | None,
) -> Screen:
    if verdict.connected:
        assert verdict.instagram is not None and verdict.page is not None
        key = "result.connected" if followers is not None else "result.connected_no_count"
        assert invite.id is not None
        return Screen(
            t(
                key,
                username=verdict.instagram.username,
                followers=count(t, followers) if followers is not None else "",
                page=verdict.page.name,
                platform=platform,
                inviter=invite.inviter_name,
            ),
            InlineKeyboardMarkup([[shared_button(t, invite.id)]]),
        )
    text: str = t("result.failed", reason=_reason(t, verdict, invite, platform))
    fix = _detail(t, f"verdict.{verdict.outcome}.fix", verdict, invite, platform)
    if fix:
        text += "\n\n" + t("result.fix_heading") + "\n" + fix
    assert invite.id is not None
    retry = InlineKeyboardMarkup([[_button(t, "button.retry", Action.RETRY, invite, Step.LOGIN)]])
    return Screen(text, retry)


def verdict_for_manager(
    t: Texts,
    invite: Invitation,
    verdict: Verdict,
    *,
    platform: str,
    followers: int | None = None,
) -> Screen:
    """The notice for the brand's managers: about the influencer, never to them."""
    if verdict.connected:
        assert verdict.instagram is not None and verdict.page is not None
        return Screen(
            connected_for_manager(
                t,
                "manager",
                handle=invite.handle,
                username=verdict.instagram.username,
                page=verdict.page.name,
                followers=followers,
            )
        )
    reason = manager_reason(
        t,
        verdict.outcome,
        handle=invite.handle,
        platform=platform,
        page=verdict.page.name if verdict.page else "",
        pages=verdict.other_pages,
        others=verdict.other_accounts,
        declined=verdict.declined,
    )
    return Screen(
        t("manager.failed", handle=invite.handle, reason=reason)
        + "\n"
        + manager_next(t, verdict.outcome, handle=invite.handle, platform=platform)
    )


def connected_for_manager(
    t: Texts, prefix: str, *, handle: str, username: str, page: str, followers: int | None
) -> Html:
    """`{prefix}.connected` or, with the follower count, `{prefix}.connected_count`."""
    if followers is None:
        return t(f"{prefix}.connected", handle=handle, username=username, page=page)
    return t(
        f"{prefix}.connected_count",
        handle=handle,
        username=username,
        page=page,
        followers=count(t, followers),
    )


def manager_reason(
    t: Texts,
    outcome: str,
    *,
    handle: str,
    platform: str,
    page: str = "",
    pages: Sequence[tuple[str, str]] = (),
    others: Sequence[str] = (),
    declined: Sequence[str] = (),
) -> Html:
    """Why a login did not connect, as one sentence for a manager: which Page, which accounts,
    which permissions (in words about the influencer: "their insights", never "your")."""
    key = f"manager.reason.{outcome}"
    if outcome == Outcome.IG_OTHER_ACCOUNT:
        if len(pages) > 1:
            key = "manager.reason.ig_other_account_pages"
        elif pages:
            page, others = pages[0][0], (pages[0][1],)
    if not t.has(key):
        return Html(outcome)
    return t(
        key,
        handle=handle,
        platform=platform,
        page=page,
        others=_listed(t, [f"@{u}" for u in others]),
        pages=_listed_html(t, [t("manager.page_account", page=p, username=u) for p, u in pages]),
        declined=Html(
            "; ".join(
                t(f"manager.permission.{scope}")
                if t.has(f"manager.permission.{scope}")
                else t("manager.permission.other", name=scope)
                for scope in declined
            )
        ),
        count=len(declined),  # one permission or several
    )


def manager_next(t: Texts, outcome: str, *, handle: str, platform: str) -> Html:
    """What happens now, fitting the reason: only where the influencer was given a fix does
    it say so; a setup problem names who can solve it."""
    key = f"manager.next.{outcome}"
    return t(key if t.has(key) else "manager.next.fix", handle=handle, platform=platform)


def _listed(t: Texts, items: Sequence[str]) -> str:
    """Plain items (escaped when filled in): "@a, @b and 3 more"."""
    return join_capped(items, MAX_LISTED, lambda n: t.plain("list.and_more", count=n))


def _listed_html(t: Texts, items: Sequence[Html], *, sep: str = ", ") -> Html:
    """Items already rendered from the catalog; with `sep` "\n", "and N more" on its own line."""
    return Html(join_capped(items, MAX_LISTED, lambda n: t("list.and_more", count=n), sep=sep))


def _reason(t: Texts, verdict: Verdict, invite: Invitation, platform: str) -> Html:
    key = f"verdict.{verdict.outcome}.reason"
    if verdict.outcome is Outcome.IG_OTHER_ACCOUNT and len(verdict.other_pages) > 1:
        key = f"verdict.{verdict.outcome}.reason_pages"
    return _detail(t, key, verdict, invite, platform)


def _detail(t: Texts, key: str, verdict: Verdict, invite: Invitation, platform: str) -> Html:
    if not t.has(key):
        return Html("")
    page = verdict.page.name if verdict.page else ""
    others = verdict.other_accounts
    if verdict.outcome is Outcome.IG_OTHER_ACCOUNT and len(verdict.other_pages) == 1:
        page, others = verdict.other_pages[0][0], (verdict.other_pages[0][1],)
    return t(
        key,
        handle=invite.handle,
        inviter=invite.inviter_name,
        platform=platform,
        page=page,
        others=_listed(t, [f"@{u}" for u in others]),
        pages=_listed_html(
            t,
            [
                t(f"verdict.{Outcome.IG_OTHER_ACCOUNT}.page_line", page=p, username=u)
                for p, u in verdict.other_pages
            ],
            sep="\n",
        ),
        declined=permission_list(t, list(verdict.declined)),
        count=len(verdict.declined),  # one permission or several
    )
