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
from bot.instagram_verdict import IgVerdict
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
    # Where it starts tells which ways in are open: the question (both), Instagram's check
    # (Instagram Login only), or the Facebook path's first check (as before issue 13).
    key = _WELCOME.get(Step(invite.step), "welcome.text")
    return Screen(
        t(
            key,
            name=first_name,
            inviter=inviter,
            platform=platform,
            handle=invite.handle,
        )
    )


def step_screen(t: Texts, invite: Invitation, *, platform: str) -> Screen | None:
    """The question of the step the influencer is at (None at the login step or when done)."""
    if invite.step == Step.PATH:
        return path_question(t, invite)
    if invite.step == Step.IG_PROFESSIONAL:
        return _question(
            t, invite, Step.IG_PROFESSIONAL, t("check.professional.question", handle=invite.handle)
        )
    if invite.step == Step.PAGE_PUBLIC:
        return _question(t, invite, Step.PAGE_PUBLIC, t("check.public.question", platform=platform))
    if invite.step == Step.PAGE_LINKED:
        return _question(
            t, invite, Step.PAGE_LINKED, t("check.linked.question", handle=invite.handle)
        )
    return None


def instructions(
    t: Texts, invite: Invitation, *, answer: Action, facebook_open: bool = False
) -> Screen:
    """After "no": how to fix it, and a "done" button. After "how": how to check, and yes/no.
    `facebook_open`: at Instagram's check, "no" also offers the Facebook path instead."""
    step = Step(invite.step)
    topic = _CHECK_TOPIC.get(step, "linked")
    if answer == Action.NO:
        text = t(f"check.{topic}.fix", handle=invite.handle)
        rows = [[_button(t, "button.done", Action.DONE, invite, step)]]
        if step is Step.IG_PROFESSIONAL and facebook_open:
            text = Html(text + "\n\n" + t("check.professional.facebook", handle=invite.handle))
            rows.append([_button(t, "button.facebook_instead", Action.FACEBOOK, invite, step)])
        return Screen(text, InlineKeyboardMarkup(rows))
    return _question(t, invite, step, t(f"check.{topic}.how", handle=invite.handle))


# --- the ways in (issue 13): which one, and Instagram Login's check ------------------------

_WELCOME = {Step.PATH: "welcome.text_choice", Step.IG_PROFESSIONAL: "welcome.text_instagram"}
_CHECK_TOPIC = {
    Step.PAGE_PUBLIC: "public",
    Step.PAGE_LINKED: "linked",
    Step.IG_PROFESSIONAL: "professional",
}
# Why the Instagram path was taken, said above its first check.
_PATH_LEADS = {Action.NO: "path.no", Action.UNSURE: "path.unsure", Action.SWITCH: "path.switched"}


def path_question(t: Texts, invite: Invitation) -> Screen:
    """Where both ways in are open: is the account linked to a Facebook Page you manage?
    Yes leads to the Facebook path; No and "I don't know" to Instagram Login."""
    return Screen(
        t("path.question", handle=invite.handle),
        InlineKeyboardMarkup(
            [
                [
                    _button(t, "button.path_yes", Action.YES, invite, Step.PATH),
                    _button(t, "button.no", Action.NO, invite, Step.PATH),
                ],
                [_button(t, "button.unsure", Action.UNSURE, invite, Step.PATH)],
            ]
        ),
    )


def path_taken(t: Texts, invite: Invitation, *, answer: Action, platform: str) -> Screen | None:
    """The first step of the way in just taken (`invite` as moved), with one line saying why
    where it is Instagram Login (after No, "I don't know", or a failed Facebook login)."""
    screen = step_screen(t, invite, platform=platform)
    lead = _PATH_LEADS.get(answer)
    if screen is None or lead is None or invite.step != Step.IG_PROFESSIONAL:
        return screen
    return Screen(Html(t(lead, handle=invite.handle) + "\n\n" + screen.text), screen.keyboard)


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


# --- reconnecting an Instagram Login connection (issue 13) ------------------------------------


def ig_reconnect_login(
    t: Texts, invitation_id: int, *, handle: str, url: str, platform: str, minutes: int
) -> Screen:
    """Reconnect for a broken Instagram Login connection: Instagram's login window once more,
    as @handle (the connection's account)."""
    return Screen(
        t("renew.ig_reconnect_login", handle=handle, platform=platform, minutes=minutes),
        InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(t.plain("ig_login.button"), url=url)],
                [
                    InlineKeyboardButton(
                        t.plain("button.new_link"), callback_data=Renew(invitation_id).pack()
                    )
                ],
            ]
        ),
    )


def ig_reconnected(t: Texts, invitation_id: int, *, username: str, platform: str) -> Screen:
    """The Instagram login mended the connection: connected again, with the way to what the
    brand sees once more."""
    return Screen(
        t("renew.ig_reconnected", username=username, platform=platform),
        InlineKeyboardMarkup([[shared_button(t, invitation_id)]]),
    )


def ig_reconnect_failed(
    t: Texts, invite: Invitation, verdict: IgVerdict, *, handle: str, platform: str
) -> Screen:
    """An Instagram login that did not mend the connection: exactly why and what to do (the
    first login's words, about the connection's account `handle`), that the connection is
    still interrupted, and Try again (a fresh reconnect)."""
    assert invite.id is not None
    account = verdict.account
    values: dict[str, object] = {
        "handle": handle,
        "inviter": invite.inviter_name,
        "platform": platform,
        "username": account.username if account is not None else handle,
        "declined": permission_list(t, list(verdict.declined)),
        "count": len(verdict.declined),
    }
    # Connected as the same username but not the same account (a name passed on): another
    # account all the same.
    outcome = "instagram_other_account" if verdict.connected else verdict.outcome.value
    reason = Html(
        t(f"ig_verdict.{outcome}.reason", **values)
        + "\n\n"
        + t("result.fix_heading")
        + "\n"
        + t(f"ig_verdict.{outcome}.fix", **values)
    )
    return Screen(
        t("renew.ig_reconnect_failed", reason=reason, handle=handle),
        renewal_keyboard(t, invite.id, "button.retry"),
    )


def ig_access_runs(t: Texts, *, handle: str, platform: str) -> Screen:
    """A Renew press while an Instagram Login connection works: nothing to renew, it is kept
    alive by itself."""
    return Screen(t("renew.ig_not_due", handle=handle, platform=platform))


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
    instagram_offered: bool = False,
) -> Screen:
    """A Facebook login's result; `instagram_offered`: it failed where Instagram Login would
    not need what was missing (no Page, not linked, half-linked) and is open for the
    invitation, so "Connect with Instagram instead" is offered beside "Try again"."""
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
    rows = [[_button(t, "button.retry", Action.RETRY, invite, Step.LOGIN)]]
    if instagram_offered:
        text += "\n\n" + t("path.instagram_offer", handle=invite.handle)
        rows.append([_button(t, "button.instagram_instead", Action.SWITCH, invite, Step.LOGIN)])
    return Screen(text, InlineKeyboardMarkup(rows))


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


# --- Instagram Login, the second way in (issue 13) -------------------------------------------


def instagram_login(
    t: Texts, invite: Invitation, *, url: str, scopes: tuple[str, ...], platform: str, minutes: int
) -> Screen:
    """The Instagram path's login button: what happens in Instagram's window and the
    permissions it asks for, in plain words."""
    assert invite.id is not None
    return Screen(
        t(
            "ig_login.text",
            handle=invite.handle,
            platform=platform,
            minutes=minutes,
            permissions=permission_list(t, scopes),
        ),
        InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(t.plain("ig_login.button"), url=url)],
                [_button(t, "button.new_link", Action.NEW_LINK, invite, Step.LOGIN)],
            ]
        ),
    )


def ig_verdict_for_influencer(
    t: Texts, invite: Invitation, verdict: IgVerdict, *, platform: str, followers: int | None
) -> Screen:
    """An Instagram Login's result for the influencer: connected, or why not and what to do,
    with "Try again" (also where only waiting helps: the button is there when they are ready)."""
    assert invite.id is not None
    values = _ig_values(t, invite, verdict, platform=platform, followers=followers, manager=False)
    if verdict.connected:
        key = "ig_verdict.connected.text" if followers is not None else "ig_verdict.connected.plain"
        return Screen(t(key, **values), InlineKeyboardMarkup([[shared_button(t, invite.id)]]))
    outcome = verdict.outcome.value
    text: str = t("result.failed", reason=t(f"ig_verdict.{outcome}.reason", **values))
    text += "\n\n" + t("result.fix_heading") + "\n" + t(f"ig_verdict.{outcome}.fix", **values)
    retry = InlineKeyboardMarkup([[_button(t, "button.retry", Action.RETRY, invite, Step.LOGIN)]])
    return Screen(text, retry)


def ig_verdict_for_manager(
    t: Texts,
    invite: Invitation,
    verdict: IgVerdict,
    *,
    platform: str,
    followers: int | None = None,
) -> Screen:
    """An Instagram Login's result for the brand's managers: about the influencer."""
    values = _ig_values(t, invite, verdict, platform=platform, followers=followers, manager=True)
    if verdict.connected:
        key = "ig_verdict.connected.manager"
        if followers is not None:
            key = "ig_verdict.connected.manager_count"
        return Screen(t(key, **values))
    outcome = verdict.outcome.value
    reason = t(f"ig_verdict.{outcome}.manager", **values)
    return Screen(
        t("manager.failed", handle=invite.handle, reason=reason)
        + "\n"
        + t(f"ig_verdict.{outcome}.manager_next", **values)
    )


def _ig_values(
    t: Texts,
    invite: Invitation,
    verdict: IgVerdict,
    *,
    platform: str,
    followers: int | None,
    manager: bool,
) -> dict[str, object]:
    """What the ``ig_verdict.*`` texts may name: the invited handle, the account that logged
    in (`username`: the connected one, or the other one), the permissions not granted (in words
    for whom it is said to) and their number."""
    if manager:
        declined = Html(
            "; ".join(
                t(f"manager.permission.{scope}")
                if t.has(f"manager.permission.{scope}")
                else t("manager.permission.other", name=scope)
                for scope in verdict.declined
            )
        )
    else:
        declined = permission_list(t, list(verdict.declined))
    account = verdict.account
    return {
        "handle": invite.handle,
        "inviter": invite.inviter_name,
        "platform": platform,
        "username": account.username if account is not None else invite.handle,
        "followers": count(t, followers) if followers is not None else "",
        "declined": declined,
        "count": len(verdict.declined),
    }

