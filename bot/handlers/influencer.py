"""The influencer's side: open the invitation, answer the checks, get the login button.

The step lives in the database (`Invitation.step`), never in the process: every update reads it,
so a restart, a second replica or an old button all lead to the current step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Self

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes, filters
from telegram.ext import MessageHandler as TextHandler

from bot import screens
from bot.buttons import Action, ButtonData, Press, Renew
from bot.commands import Audience, command
from bot.connect import LoginOffer
from bot.crypto import MANAGER_LINK_PREFIX
from bot.handlers.base import HandlerBase, acknowledge, sender
from bot.health import HealthReason, HealthState
from bot.i18n import LANGUAGES, Texts
from bot.models import Invitation, InviteStatus, LoginPath, Step, access_ends, utcnow
from bot.paths import brand_values_opening, first_step, first_steps, open_paths
from bot.repeats import RecentLines
from bot.screens import Screen
from bot.store import BindProblem, EventKind
from bot.store.brands import LinkProblem
from bot.store.console import health_of
from bot.store.logins import RenewalRefused
from bot.store.steps import Answered
from bot.upkeep import breakage_screen, due_of, final_request, renewal_screen
from bot.verdict import Outcome

# Telegram's deep-link payload alphabet and length: anything else cannot be one of our tokens.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class _Move:
    """A button that moves the flow: to which step, the way in taken with it (recorded on the
    invitation), and the way in that must still be open for the move (`bot.paths`)."""

    to: Step
    path: LoginPath | None = None
    needs: LoginPath | None = None
    kind: EventKind = EventKind.CHECK_PASSED


_TO_FACEBOOK = _Move(
    Step.PAGE_PUBLIC, LoginPath.FACEBOOK, LoginPath.FACEBOOK, EventKind.CHECK_ANSWERED
)
_TO_INSTAGRAM = _Move(
    Step.IG_PROFESSIONAL, LoginPath.INSTAGRAM, LoginPath.INSTAGRAM, EventKind.CHECK_ANSWERED
)
_MOVES = {
    (Step.PAGE_PUBLIC, Action.YES): _Move(Step.PAGE_LINKED),
    (Step.PAGE_PUBLIC, Action.DONE): _Move(Step.PAGE_LINKED),
    (Step.PAGE_LINKED, Action.YES): _Move(Step.LOGIN),
    (Step.PAGE_LINKED, Action.DONE): _Move(Step.LOGIN),
    # The ways in (issue 13): the question where both are open, and Instagram Login's check.
    (Step.PATH, Action.YES): _TO_FACEBOOK,
    (Step.PATH, Action.NO): _TO_INSTAGRAM,
    (Step.PATH, Action.UNSURE): _TO_INSTAGRAM,  # Instagram Login needs the least
    (Step.IG_PROFESSIONAL, Action.YES): _Move(Step.LOGIN, needs=LoginPath.INSTAGRAM),
    (Step.IG_PROFESSIONAL, Action.DONE): _Move(Step.LOGIN, needs=LoginPath.INSTAGRAM),
    (Step.IG_PROFESSIONAL, Action.FACEBOOK): _TO_FACEBOOK,
}
# The checks whose "no" and "how" get instructions.
_CHECKS = frozenset({Step.PAGE_PUBLIC, Step.PAGE_LINKED, Step.IG_PROFESSIONAL})
_ANSWER_WORDS = {
    Action.YES: "yes",
    Action.DONE: "done",
    Action.NO: "no",
    Action.HOW: "how",
    Action.UNSURE: "unsure",
    Action.FACEBOOK: "facebook",
    Action.SWITCH: "instagram",
}
# The order of the steps, for telling an older step's button from a later one's. Instagram
# Login's check comes before the Facebook path's: from it, "Use a Facebook Page instead" moves on.
_FLOW = (
    Step.WELCOME,
    Step.PATH,
    Step.IG_PROFESSIONAL,
    Step.PAGE_PUBLIC,
    Step.PAGE_LINKED,
    Step.LOGIN,
    Step.DONE,
)
_STEP_NUMBER = {Step.WELCOME: 1, Step.PAGE_PUBLIC: 1, Step.PAGE_LINKED: 2, Step.LOGIN: 3}
_IG_STEP_NUMBER = {Step.IG_PROFESSIONAL: 1, Step.LOGIN: 2}  # of 2
# Buttons that choose a way in: the first step reached says why where it is Instagram Login.
_PATH_ACTIONS = frozenset({Action.YES, Action.NO, Action.UNSURE, Action.SWITCH, Action.FACEBOOK})
# Free text gets one line pointing at the buttons; the whole step again only after this long
# without progress or repeat (a step is 5 to 15 lines: repeating it per message floods the chat).
REPEAT_STEP_AFTER = timedelta(minutes=10)
# Language buttons made before `bot.buttons` (a flow button with action "g" and id 0).
_OLD_LANGUAGE_PREFIX = "c1:g:0:"
# Ended on purpose (withdrawn, data deleted): nothing for the influencer to mend.
_ENDED_REASONS = frozenset({HealthReason.REVOKED, HealthReason.FORGOTTEN})


@dataclass(frozen=True)
class ChooseLanguage(ButtonData):
    """/language's buttons: `lg:<code>`. Any invitation's step is left alone."""

    prefix: ClassVar[str] = "lg"
    code: str

    def __post_init__(self) -> None:
        if self.code not in LANGUAGES:
            raise ValueError(f"no language {self.code!r}")

    @classmethod
    def parse(cls, data: str | None) -> Self | None:
        # Transition: the old layout still chooses the language, as chats keep buttons for
        # weeks; it is unambiguous (no flow button has id 0). Drop it some weeks after release.
        if data is not None and data.startswith(_OLD_LANGUAGE_PREFIX):
            data = f"{cls.prefix}:{data.removeprefix(_OLD_LANGUAGE_PREFIX)}"
        return super().parse(data)


_EVERYONE = (Audience.INFLUENCER, Audience.MANAGER, Audience.ADMIN)
# Declared once: registered below, and the menus are built from them.
COMMANDS = (
    command("start", Audience.INFLUENCER, rank=0),
    command("language", *_EVERYONE, rank=31),
    command("cancel", Audience.INFLUENCER, rank=40),
)


class InfluencerHandlers(HandlerBase):
    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self._recent = RecentLines()  # the last line answered to typed text, per person

    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [
            *(CommandHandler(c.name, getattr(self, c.handler_attr)) for c in COMMANDS),
            CallbackQueryHandler(self.renew, pattern=Renew.pattern()),
            CallbackQueryHandler(self.press),  # every button, so stale or forged ones get an answer
            TextHandler(filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE, self.free_text),
        ]

    # --- commands ----------------------------------------------------------------------------

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        payload = context.args[0] if context.args else None
        if payload and not payload.startswith(MANAGER_LINK_PREFIX) and _TOKEN.match(payload):
            who = sender(update)
            if who is not None:
                await self._open_link(*who, payload)
            return
        asked = await self.asker(update)
        if asked is None:
            return
        user, message, t = asked
        if payload is None:
            invite = await self.db.invitations.active_invitation_of(user.id)
            if invite is None:
                text = t("start.no_token", platform=self.settings.platform_name)
                await self.reply(message, Screen(text))
                return
            if _in_flow(invite):
                await self._unpause(invite)
                await self.reply(message, Screen(t("start.resume")))
            await self.show_current(message, t, user, invite)
            return

        if payload.startswith(MANAGER_LINK_PREFIX):
            await self._become_manager(user, message, t, payload[len(MANAGER_LINK_PREFIX) :])
            return
        await self.reply(message, Screen(t(f"start.{BindProblem.UNKNOWN.value}")))

    async def _open_link(self, user: User, message: Message, token: str) -> None:
        """`/start <token>`: one transaction binds the invitation, notes the person's language,
        writes the event and the manager's card refresh (`bot.store.steps`)."""
        opened = await self.db.steps.open_link(
            token=token,
            telegram_user_id=user.id,
            telegram_language=user.language_code,
            card=self.console.card_refresh,
            # Where it starts depends on the ways in open for its brand (`bot.paths`).
            first=first_steps(self.settings),
        )
        t = self.texts_of(user, opened.language)
        bound = opened.result
        if isinstance(bound, BindProblem):
            await self.reply(message, Screen(t(f"start.{bound.value}")))
            return
        invite = bound.invitation
        if bound.fresh:
            await self.reply(
                message,
                screens.welcome(
                    t,
                    invite,
                    first_name=user.first_name,
                    platform=self.settings.platform_name,
                    brand=opened.brand_name,
                ),
            )
            if opened.refreshed:
                self.console.wake_delivery()
        elif _in_flow(invite):
            await self._unpause(invite)
            await self.reply(message, Screen(t("start.resume")))
        await self.show_current(message, t, user, invite)

    async def _become_manager(self, user: User, message: Message, t: Texts, token: str) -> None:
        result = (
            await self.db.brands.accept_manager_link(
                token=token, telegram_id=user.id, name=user.full_name
            )
            if _TOKEN.match(token)
            else LinkProblem.UNKNOWN
        )
        if isinstance(result, LinkProblem):
            await self.reply(message, Screen(t(f"console.link.{result.value}")))
            return
        brand = await self.db.brands.brand(result.brand_id)
        await self.console.menus.refresh(user.id)
        await self.reply(
            message, Screen(t("console.manager_welcome", brand=brand.name if brand else ""))
        )

    async def cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self.asker(update)
        if asked is None:
            return
        user, message, t = asked
        invite = await self.db.invitations.active_invitation_of(user.id)
        if invite is None or invite.status in (InviteStatus.CONNECTED, InviteStatus.REVOKED):
            await self.reply(message, Screen(t("cancel.nothing")))
            return
        assert invite.id is not None
        await self.db.invitations.record_event(invitation_id=invite.id, kind=EventKind.PAUSED)
        await self.reply(message, Screen(t("cancel.done"), screens.resume_keyboard(t, invite)))

    async def language(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self.asker(update)
        if asked is None:
            return
        user, message, t = asked
        row = [
            InlineKeyboardButton(
                t.plain(f"button.lang_{code}"),
                callback_data=ChooseLanguage(code).pack(),
            )
            for code in LANGUAGES
        ]
        await self.reply(message, Screen(t("language.choose"), InlineKeyboardMarkup([row])))

    async def free_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self.asker(update)
        if asked is None:
            return
        user, message, t = asked
        invite = await self.db.invitations.active_invitation_of(user.id)
        if invite is None:
            key = "help.manager" if self.is_admin(user) else "free_text.no_invite"
            await self._line(user, message, t(key))
        elif invite.status == InviteStatus.CONNECTED:
            upkeep = await self._upkeep_screen(t, user, invite)
            if upkeep is None:
                await self._line(user, message, t("free_text.connected"))
            elif self._recent.fresh(user.id, upkeep.text):
                # The request or notice again, with its button; not again per message typed.
                await self.reply(message, upkeep)
        elif await self.db.invitations.paused(invite.id or 0):
            # After /cancel the button to use is Continue, not the step's.
            await self._line(user, message, t("free_text.paused", inviter=invite.inviter_name))
        elif await self._repeat_step_due(invite):
            await self.reply(message, Screen(t("free_text.in_flow", inviter=invite.inviter_name)))
            await self.show_current(message, t, user, invite)
        else:
            await self._line(user, message, _brief(t, invite))

    async def _line(self, user: User, message: Message, text: str) -> None:
        """A one-line answer to typed text; the same line again within a short time is not
        sent (someone typing fast has it right above; `bot.repeats`)."""
        if self._recent.fresh(user.id, text):
            await self.reply(message, Screen(text))

    async def _unpause(self, invite: Invitation) -> None:
        """/start continues a paused setup as Continue does."""
        if invite.id is not None and await self.db.invitations.paused(invite.id):
            await self.db.invitations.record_event(invitation_id=invite.id, kind=EventKind.RESUMED)

    async def _repeat_step_due(self, invite: Invitation) -> bool:
        """Whether free text gets the whole step again: only when the step was neither reached
        nor repeated in the last REPEAT_STEP_AFTER (decided from the invitation already loaded;
        the database is asked only when a repeat is due, so that two messages repeat once)."""
        assert invite.id is not None
        quiet_since = utcnow() - REPEAT_STEP_AFTER
        last_shown = max(invite.updated_at, invite.step_repeated_at or invite.updated_at)
        if last_shown > quiet_since:
            return False
        return await self.db.invitations.claim_step_repeat(
            invitation_id=invite.id, quiet_since=quiet_since
        )

    # --- buttons -----------------------------------------------------------------------------

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        who = sender(update)
        if query is None or who is None:
            return
        user, message = who
        language = ChooseLanguage.parse(query.data)
        if language is not None:
            await self._set_language(user, message, language.code)
            await acknowledge(query)
            return
        pressed = Press.parse(query.data)  # None: forged, or of a layout no longer made
        if pressed is not None and pressed.action is Action.SWITCH:
            await self._switch_to_instagram(query, user, message, pressed)
            return
        move = _MOVES.get((pressed.step, pressed.action)) if pressed is not None else None
        if pressed is not None and move is not None:
            # One transaction moves the step, or reads why not (bot.store.steps).
            answered = await self._move(user, pressed, move)
            t = self.texts_of(user, answered.language)
            invite = answered.invitation
            if answered.moved and invite is not None:
                await acknowledge(query)
                await self._moved(message, t, user, invite, answered, pressed.action)
                return
            if invite is not None and invite.step == pressed.step and _in_flow(invite):
                paths = open_paths(self.settings, answered.login_paths)
                if move.needs is not None and move.needs not in paths:
                    # That way in was closed for the brand meanwhile: the one that is open.
                    await acknowledge(query, t.plain("path.not_open"), show_alert=True)
                    await self.clear_buttons(message)
                    await self._onto_open_path(message, t, user, invite, pressed, paths)
                    return
        else:
            t = await self.texts(user)
            invite = (
                await self.db.invitations.invitation_of(
                    invitation_id=pressed.invitation_id, telegram_user_id=user.id
                )
                if pressed is not None
                else None
            )
        if pressed is None or invite is None or invite.status == InviteStatus.REVOKED:
            # Forged, foreign or withdrawn: say so, change nothing.
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            await self.clear_buttons(message)
            return
        if pressed.step != invite.step and _already_answered(pressed, invite):
            # A double tap, or a copy of the question further up: what follows the step is
            # already in the chat, so the tap is only acknowledged.
            await acknowledge(query, t.plain("stale.answered"))
            await self.clear_buttons(message)
            return
        if pressed.step != invite.step:
            await acknowledge(query, t.plain("stale.button"))
            await self.clear_buttons(message)
            await self.show_current(message, t, user, invite)
            return
        if move is not None:
            # The step did not move although the button is the current one: the same tap
            # handled twice at once (e.g. by two replicas); the other one shows the next step.
            await acknowledge(query, t.plain("stale.answered"))
            await self.clear_buttons(message)
            return
        if invite.step == Step.LOGIN and pressed.action in (Action.RETRY, Action.NEW_LINK):
            # A fresh login button; the tap is answered once it is issued, so the second and
            # third of fast taps hear that it is on its way instead of adding copies.
            await self.clear_buttons(message)
            await self._login(message, t, user, invite, reuse=False, tap=query)
            return
        await acknowledge(query)
        await self.clear_buttons(message)
        await self._act(pressed, message, t, user, invite)

    async def renew(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Renew access / Reconnect (under a renewal request or a breakage notice, and a
        renewal login's "New login link" and "Try again"): a fresh login for the invitation's
        kept connection, for the influencer bound to it only. A second press within seconds is
        only acknowledged (its login is on the way); a press while the connection works and
        access runs long enough hands out no login but says until when it runs."""
        query = update.callback_query
        who = sender(update)
        if query is None or who is None:
            return
        user, message = who
        t = await self.texts(user)
        pressed = Renew.parse(query.data)
        offer = (
            await self.connect.renewal(t, pressed.invitation_id, telegram_user_id=user.id)
            if pressed is not None
            else RenewalRefused.NOT_YOURS
        )
        if offer is RenewalRefused.NOT_YOURS:
            # Forged, or someone else's: say nothing about it, change nothing.
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            await self.clear_buttons(message)
            return
        if offer is RenewalRefused.JUST_ISSUED:
            # A double tap: the first tap's login button is in the chat already.
            await acknowledge(query, t.plain("renew.double_tap"))
            return
        await acknowledge(query)
        if offer is RenewalRefused.NOT_DUE:
            # An old button (e.g. after a renewal that worked): no login, until when it runs.
            assert pressed is not None
            kept = await self.db.logins.kept_connection(pressed.invitation_id)
            await self.clear_buttons(message)
            handle = (kept.instagram_username if kept else "") or ""
            if kept is not None and kept.path == LoginPath.INSTAGRAM:
                # Kept up by the health job's token refresh: no date to wait for.
                runs = screens.ig_access_runs(
                    t, handle=handle, platform=self.settings.platform_name
                )
            else:
                runs = screens.access_runs(
                    t,
                    handle=handle,
                    platform=self.settings.platform_name,
                    until=access_ends(kept) if kept is not None else None,
                )
            await self.reply(message, runs)
            return
        if offer is RenewalRefused.ENDED:
            await self.clear_buttons(message)
            await self.reply(message, Screen(t("renewal.ended")))
            return
        if offer is RenewalRefused.NOT_CONNECTED:
            # Not connected yet (an old button): the setup's current step instead.
            assert pressed is not None
            invite = await self.db.invitations.invitation_of(
                invitation_id=pressed.invitation_id, telegram_user_id=user.id
            )
            await self.clear_buttons(message)
            if invite is not None:
                await self.show_current(message, t, user, invite)
            return
        self._recent.forget(user.id)  # as `show_current` does
        await self._offer_login(message, offer)

    async def _act(
        self, pressed: Press, message: Message, t: Texts, user: User, invite: Invitation
    ) -> None:
        assert invite.id is not None
        step = Step(invite.step)
        if pressed.action is Action.RESUME:
            await self.db.invitations.record_event(invitation_id=invite.id, kind=EventKind.RESUMED)
            await self.show_current(message, t, user, invite)
        elif step in _CHECKS and pressed.action in (Action.NO, Action.HOW):
            await self.db.invitations.record_event(
                invitation_id=invite.id,
                kind=EventKind.CHECK_ANSWERED,
                detail=f"{step.value}:{_ANSWER_WORDS[pressed.action]}",
            )
            # Not a professional account yet: the Facebook path is offered too where open.
            facebook_open = (
                step is Step.IG_PROFESSIONAL
                and pressed.action is Action.NO
                and LoginPath.FACEBOOK in await self._open_paths(invite)
            )
            how = screens.instructions(
                t, invite, answer=pressed.action, facebook_open=facebook_open
            )
            await self._show_step(message, how, invite)
        else:
            await self.show_current(message, t, user, invite)

    async def _set_language(self, user: User, message: Message, code: str) -> None:
        if code not in LANGUAGES:
            return
        await self.db.people.set_language(user.id, code)
        t = await self.texts(user)
        await self.console.menus.refresh(user.id)  # the "/" menu in the new language too
        await self.clear_buttons(message)
        await self.reply(message, Screen(t("language.set")))
        invite = await self.db.invitations.active_invitation_of(user.id)
        if invite is not None and _in_flow(invite):
            # The step on screen is in the old language: show it again in the new one.
            await self.show_current(message, t, user, invite)
        elif invite is not None:
            # A renewal request or breakage notice waiting for them: again, in the new language.
            upkeep = await self._upkeep_screen(t, user, invite)
            if upkeep is not None:
                await self.reply(message, upkeep)

    async def _move(self, user: User, pressed: Press, move: _Move) -> Answered:
        """The compare-and-set of a button that moves the flow (`_MOVES`), with its event; the
        login step's state is issued with it."""
        return await self.db.steps.answer_check(
            invitation_id=pressed.invitation_id,
            telegram_user_id=user.id,
            telegram_language=user.language_code,
            from_step=pressed.step,
            to_step=move.to,
            detail=f"{pressed.step.value}:{_ANSWER_WORDS[pressed.action]}",
            # Reaching the login step issues its state in the same transaction.
            login=self.connect.prepare_login() if move.to is Step.LOGIN else None,
            card=self.console.card_refresh,
            path=move.path,
            open_for=(
                brand_values_opening(self.settings, move.needs) if move.needs is not None else None
            ),
            kind=move.kind,
        )

    async def _moved(
        self,
        message: Message,
        t: Texts,
        user: User,
        invite: Invitation,
        answered: Answered,
        action: Action,
    ) -> None:
        """After a move: the login button issued with it, or the step reached (a way in just
        taken with the line saying why)."""
        await self.clear_buttons(message)
        if answered.ticket is not None:
            self._recent.forget(user.id)  # as `show_current` does
            offer = self.connect.login_offer(t, invite, answered.ticket)
            await self._offer_login(message, offer)
        elif invite.step in (Step.IG_PROFESSIONAL, Step.PAGE_PUBLIC) and action in _PATH_ACTIONS:
            self._recent.forget(user.id)
            taken = screens.path_taken(
                t, invite, answer=action, platform=self.settings.platform_name
            )
            if taken is not None:
                await self._show_step(message, taken, invite)
        else:
            await self.show_current(message, t, user, invite)
        if answered.refreshed:
            self.console.wake_delivery()

    async def _onto_open_path(
        self,
        message: Message,
        t: Texts,
        user: User,
        invite: Invitation,
        pressed: Press,
        paths: frozenset[LoginPath],
    ) -> None:
        """A way in tapped that the brand closed meanwhile: on to the first step of the one
        open (there is always one, `bot.paths`), or the step again where it is that one's."""
        to, path = first_step(paths)
        if len(paths) != 1 or to == pressed.step:
            await self.show_current(message, t, user, invite)
            return
        only = next(iter(paths))
        answered = await self.db.steps.answer_check(
            invitation_id=pressed.invitation_id,
            telegram_user_id=user.id,
            telegram_language=user.language_code,
            from_step=pressed.step,
            to_step=to,
            detail=f"{pressed.step.value}:{only.value}",
            card=self.console.card_refresh,
            path=path or only,
            open_for=brand_values_opening(self.settings, only),
            kind=EventKind.CHECK_ANSWERED,
        )
        if answered.invitation is None:
            return
        if answered.moved and answered.refreshed:
            self.console.wake_delivery()
        await self.show_current(message, t, user, answered.invitation)

    async def _switch_to_instagram(
        self, query: CallbackQuery, user: User, message: Message, pressed: Press
    ) -> None:
        """ "Connect with Instagram instead" under a failed Facebook login: on to Instagram
        Login's check, once (`Steps.switch_to_instagram`); a double tap or an old button
        changes nothing, and where Instagram Login is not open for the brand it says so."""
        answered = await self.db.steps.switch_to_instagram(
            invitation_id=pressed.invitation_id,
            telegram_user_id=user.id,
            telegram_language=user.language_code,
            open_for=brand_values_opening(self.settings, LoginPath.INSTAGRAM),
            card=self.console.card_refresh,
        )
        t = self.texts_of(user, answered.language)
        invite = answered.invitation
        if answered.moved and invite is not None:
            await acknowledge(query)
            await self._moved(message, t, user, invite, answered, Action.SWITCH)
            return
        if invite is None or invite.status == InviteStatus.REVOKED:
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            await self.clear_buttons(message)
            return
        if not _in_flow(invite):
            await acknowledge(query, t.plain("stale.button"))
            await self.clear_buttons(message)
            await self.show_current(message, t, user, invite)
            return
        if invite.path == LoginPath.INSTAGRAM:
            # A double tap: Instagram Login's check is in the chat already.
            await acknowledge(query, t.plain("path.already"))
            await self.clear_buttons(message)
            return
        if LoginPath.INSTAGRAM not in open_paths(self.settings, answered.login_paths):
            # Closed for the brand meanwhile: "Try again" (the Facebook path) stays.
            await acknowledge(query, t.plain("path.not_open_instagram"), show_alert=True)
            return
        # Not after a failed login any more (e.g. a new login link since): where they are.
        await acknowledge(query, t.plain("stale.button"))
        await self.clear_buttons(message)
        await self.show_current(message, t, user, invite)

    async def _open_paths(self, invite: Invitation) -> frozenset[LoginPath]:
        """The ways in open for this invitation now (its brand's choice, read)."""
        brand = await self.db.brands.brand(invite.brand_id) if invite.brand_id else None
        return open_paths(self.settings, brand.login_paths if brand is not None else None)

    # --- showing where the person is ---------------------------------------------------------

    async def show_current(
        self, message: Message, t: Texts, user: User, invite: Invitation
    ) -> None:
        self._recent.forget(user.id)  # the next line to typed text follows this, not the last
        if invite.status == InviteStatus.CONNECTED or invite.step == Step.DONE:
            upkeep = await self._upkeep_screen(t, user, invite)
            if upkeep is not None:
                await self.reply(message, upkeep)
                return
            await self.reply(message, Screen(t("start.already_connected", handle=invite.handle)))
            return
        if invite.status == InviteStatus.REVOKED:
            await self.reply(message, Screen(t("start.revoked")))
            return
        question = screens.step_screen(t, invite, platform=self.settings.platform_name)
        if question is not None:
            await self._show_step(message, question, invite)
        elif invite.step == Step.LOGIN:
            await self._login(message, t, user, invite)

    async def _upkeep_screen(self, t: Texts, user: User, invite: Invitation) -> Screen | None:
        """While a connected invitation's connection needs the influencer (issue 11): the
        renewal request, or the breakage notice with its reason, fix and Reconnect button, as
        `bot.upkeep` sent them. None while it works (or ended on purpose)."""
        if invite.id is None or invite.status != InviteStatus.CONNECTED:
            return None
        connection = await self.db.health.connection_of(invite.id)
        if connection is None:
            return None
        state, reason = health_of(connection)
        due = due_of(user.id, invite, connection)
        platform = self.settings.platform_name
        if state is HealthState.RENEWAL_DUE:
            ends = access_ends(connection)
            final = final_request(ends, self.settings.renewal_lead_days)
            return renewal_screen(t, due, platform=platform, ends=ends, final=final)
        if state in (HealthState.BROKEN, HealthState.DISCONNECTED) and reason is not None:
            if reason in _ENDED_REASONS:
                return None
            details = await self.db.health.breakage_details(invite.id)
            return breakage_screen(
                t,
                due,
                reason,
                platform=platform,
                declined=details.declined,
                username=details.username,
            )
        return None

    async def _show_step(self, message: Message, screen: Screen, invite: Invitation) -> None:
        """A check's question or instructions: only the newest copy keeps its buttons (a step
        shown again, e.g. by /language, takes them off the previous one)."""
        sent = await self.reply(message, screen)
        if screen.keyboard is None or invite.id is None:
            return
        # Noted behind (`bot.store.notes`): no transaction more for this update.
        before = self.db.steps.notes.note_step_message(
            invite.id, sent.message_id, stored=invite.step_message_id
        )
        if before is not None:
            await self.take_buttons_off(message.get_bot(), sent.chat_id, before)

    async def _login(
        self,
        message: Message,
        t: Texts,
        user: User,
        invite: Invitation,
        *,
        reuse: bool = True,
        tap: CallbackQuery | None = None,
    ) -> None:
        """The login button: the live one again (`reuse`, e.g. after free text or /start), or a
        new one that replaces it ("New link", "Try again": the `tap`, answered here; a tap
        within seconds of the last new one only hears that it is on its way). Only the newest
        message keeps it."""
        offer = await self.connect.new_login(
            t,
            invite,
            telegram_user_id=user.id,
            # Facebook does not ask again for declined permissions unless told to.
            rerequest=invite.last_reason == Outcome.PERMISSIONS_DECLINED,
            reuse=reuse,
            tapped=(message.chat_id, message.message_id) if tap is not None else None,
        )
        if tap is not None:
            just_issued = offer is RenewalRefused.JUST_ISSUED
            await acknowledge(tap, t.plain("renew.double_tap") if just_issued else None)
        if offer is RenewalRefused.JUST_ISSUED:
            return
        if offer is None:
            fresh = await self.db.invitations.invitation_of(
                invitation_id=invite.id or 0, telegram_user_id=user.id
            )
            if fresh is not None and fresh.step != Step.LOGIN:
                await self.show_current(message, t, user, fresh)
            return
        await self._offer_login(message, offer)
        if not offer.ticket.reused:
            await self.console.refresh_card(invite.id or 0)

    async def _offer_login(self, message: Message, offer: LoginOffer) -> None:
        """Send the login button; only the newest message keeps it."""
        sent = await self.reply(message, offer.screen)
        stale = self.connect.carried_by(offer, chat_id=sent.chat_id, message_id=sent.message_id)
        for chat_id, message_id in stale:
            await self.take_buttons_off(message.get_bot(), chat_id, message_id)


def _brief(t: Texts, invite: Invitation) -> str:
    """The one line answering typed text: use the buttons of the step you are at."""
    step = Step(invite.step)
    if step is Step.PATH:
        return t("free_text.brief_choice", inviter=invite.inviter_name)
    if invite.path == LoginPath.INSTAGRAM:
        number = _IG_STEP_NUMBER.get(step, 1)
        return t("free_text.brief_instagram", step=number, inviter=invite.inviter_name)
    return t("free_text.brief", step=_STEP_NUMBER.get(step, 1), inviter=invite.inviter_name)


def _in_flow(invite: Invitation) -> bool:
    """Still on the way: neither connected nor withdrawn."""
    return (
        invite.status not in (InviteStatus.CONNECTED, InviteStatus.REVOKED)
        and invite.step != Step.DONE
    )


def _already_answered(pressed: Press, invite: Invitation) -> bool:
    """An answer to a check the influencer has already passed (a double tap, or an older copy
    of the question)."""
    if pressed.action not in _ANSWER_WORDS:
        return False
    try:
        return _FLOW.index(Step(pressed.step)) < _FLOW.index(Step(invite.step))
    except ValueError:
        return False
