"""What the influencer and the manager see: text from the catalogs plus the buttons, for each
step and result. No I/O here; handlers and notifications send what these return."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import Action, Press
from bot.i18n import Html, Texts
from bot.models import Invitation, Step
from bot.verdict import Outcome, Verdict


@dataclass(frozen=True)
class Screen:
    text: str
    keyboard: InlineKeyboardMarkup | None = None


def _button(
    t: Texts, key: str, action: Action, invite: Invitation, step: str
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
        return Screen(
            t(
                key,
                username=verdict.instagram.username,
                followers=f"{followers:,}".replace(",", t.plain("number.thousands"))
                if followers is not None
                else "",
                page=verdict.page.name,
                platform=platform,
                inviter=invite.inviter_name,
            )
        )
    text: str = t("result.failed", reason=_reason(t, verdict, invite, platform))
    fix = _detail(t, f"verdict.{verdict.outcome}.fix", verdict, invite, platform)
    if fix:
        text += "\n\n" + t("result.fix_heading") + "\n" + fix
    assert invite.id is not None
    retry = InlineKeyboardMarkup([[_button(t, "button.retry", Action.RETRY, invite, Step.LOGIN)]])
    return Screen(text, retry)


def verdict_for_manager(t: Texts, invite: Invitation, verdict: Verdict) -> Screen:
    if verdict.connected:
        assert verdict.instagram is not None and verdict.page is not None
        return Screen(
            t(
                "manager.connected",
                handle=invite.handle,
                username=verdict.instagram.username,
                page=verdict.page.name,
            )
        )
    return Screen(
        t(
            "manager.failed",
            handle=invite.handle,
            reason=_detail(t, f"manager.reason.{verdict.outcome}", verdict, invite, ""),
        )
        + (
            "\n" + t("manager.app_problem")
            if verdict.outcome is Outcome.APP_NOT_LIVE
            else "\n" + t("manager.influencer_told")
        )
    )


def _reason(t: Texts, verdict: Verdict, invite: Invitation, platform: str) -> Html:
    return _detail(t, f"verdict.{verdict.outcome}.reason", verdict, invite, platform)


def _detail(t: Texts, key: str, verdict: Verdict, invite: Invitation, platform: str) -> Html:
    if not t.has(key):
        return Html("")
    return t(
        key,
        handle=invite.handle,
        platform=platform,
        page=verdict.page.name if verdict.page else "",
        others=", ".join(f"@{u}" for u in verdict.other_accounts),
        declined=permission_list(t, list(verdict.declined)),
    )
