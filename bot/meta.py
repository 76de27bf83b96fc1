"""Meta's callbacks and people's data leaving: deauthorize, data deletion, and /forget.

Meta POSTs a form with a `signed_request`: `<base64url signature>.<base64url JSON payload>`, the
signature being HMAC-SHA256 of the payload segment (as sent) keyed with the app secret.
`parse_signed_request` checks it and is pure; `PrivacyService` is what the routes and the /forget
handler call. It composes the notices and leaves every state change, with the notices, to one
transaction of `bot.store.privacy`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.buttons import Renew
from bot.crypto import TokenVault
from bot.graph import GraphClient, GraphError
from bot.i18n import Language, Texts, pick_language
from bot.models import (
    DeletionRequest,
    Invitation,
    LoginPath,
    OutboxAudience,
    OutboxKind,
    Person,
    utcnow,
)
from bot.notices import Notices, outgoing
from bot.screens import Screen
from bot.store import Database, Outgoing
from bot.store.privacy import Affected

if TYPE_CHECKING:
    from bot.revocations import Revocations

log = logging.getLogger(__name__)

ALGORITHM = "HMAC-SHA256"
# Meta's signed requests are a few hundred characters; anything far bigger is not Meta.
MAX_SIGNED_REQUEST = 4096
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# App-scoped user ids are digits; the sandbox's are short words. Both fit the column (64).
_USER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SIGNATURE_BYTES = hashlib.sha256().digest_size
CONFIRMATION_CODE = re.compile(r"[0-9a-f]{32}")
STATUS_PATH = "/meta/deletion-status/"
# A deletion request still "received" this long after it came in was interrupted (a crash between
# recording and deleting): the periodic job finishes it.
UNFINISHED_AFTER = timedelta(minutes=1)
# Meta calls the moment someone removes the app or asks for deletion, with `issued_at` of that
# moment: a signed_request older than this, or issued later than the clock skew allows, is refused.
MAX_SIGNED_REQUEST_AGE = timedelta(hours=1)
MAX_CLOCK_SKEW = timedelta(minutes=5)


class SignatureProblem(StrEnum):
    MALFORMED = "malformed"  # not two base64url segments, too long, payload not a JSON object
    BAD_SIGNATURE = "bad_signature"  # not signed with our app secret
    BAD_ALGORITHM = "bad_algorithm"
    NO_USER = "no_user"
    # No issued_at, issued more than MAX_SIGNED_REQUEST_AGE ago, or too far in the future: a
    # signed_request captured once must not be played back for ever.
    STALE = "stale"


@dataclass(frozen=True)
class SignedRequest:
    user_id: str  # app-scoped Facebook user id
    issued_at: int | None


def _b64url(segment: str) -> bytes | None:
    """base64url without (or with) its padding, strictly: None for anything else."""
    if not _SEGMENT.fullmatch(segment):
        return None
    bare = segment.rstrip("=")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        return None


def parse_signed_request(
    signed_request: str, *, app_secret: str
) -> SignedRequest | SignatureProblem:
    """Verify a signed_request and read who it is about. Nothing is decoded from the payload
    before its signature is known to be ours."""
    if not app_secret:
        return SignatureProblem.BAD_SIGNATURE  # an empty key would let anyone sign
    if len(signed_request) > MAX_SIGNED_REQUEST or signed_request.count(".") != 1:
        return SignatureProblem.MALFORMED
    sig_segment, payload_segment = signed_request.split(".")
    signature = _b64url(sig_segment)
    raw_payload = _b64url(payload_segment)
    if signature is None or raw_payload is None:
        return SignatureProblem.MALFORMED
    expected = hmac.new(
        app_secret.encode("utf-8"), payload_segment.encode("ascii"), hashlib.sha256
    ).digest()
    if len(signature) != _SIGNATURE_BYTES or not hmac.compare_digest(signature, expected):
        return SignatureProblem.BAD_SIGNATURE
    try:
        payload = json.loads(raw_payload)
    except (ValueError, RecursionError):
        return SignatureProblem.MALFORMED
    if not isinstance(payload, dict):
        return SignatureProblem.MALFORMED
    if payload.get("algorithm") != ALGORITHM:
        return SignatureProblem.BAD_ALGORITHM
    user_id = payload.get("user_id")
    if type(user_id) is int and user_id > 0:
        user_id = str(user_id)
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        return SignatureProblem.NO_USER
    issued_at = payload.get("issued_at")
    return SignedRequest(user_id, issued_at if type(issued_at) is int else None)


def check_fresh(signed: SignedRequest, *, now: float) -> SignedRequest | SignatureProblem:
    """A verified signed_request is used only while fresh; one without `issued_at` (Meta always
    sends it) never is."""
    if signed.issued_at is None:
        return SignatureProblem.STALE
    age = now - signed.issued_at
    if age > MAX_SIGNED_REQUEST_AGE.total_seconds() or -age > MAX_CLOCK_SKEW.total_seconds():
        return SignatureProblem.STALE
    return signed


def sign_request(payload: Mapping[str, object], *, app_secret: str) -> str:
    """What Meta sends: for the tests and the sandbox, the inverse of `parse_signed_request`."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    digest = hmac.new(app_secret.encode("utf-8"), body.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + "." + body


def new_confirmation_code() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class DeletionReceipt:
    """The answer Meta expects from the data deletion callback."""

    url: str
    confirmation_code: str


def _nothing() -> None:
    pass


class PrivacyService:
    """Deauthorize and data deletion (Meta's callbacks, routes in `web_callback.app`) and
    /forget (`bot.handlers.privacy`)."""

    def __init__(
        self,
        *,
        db: Database,
        app_secret: str,
        public_url: str,
        default_language: Language,
        graph: GraphClient | None = None,
        vault: TokenVault | None = None,
        notices: Notices | None = None,
        on_change: Callable[[int], Awaitable[None]] | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._db = db
        self._app_secret = app_secret
        self._public_url = public_url.rstrip("/")
        self._default: Language = default_language
        self._graph = graph
        self._vault = vault
        # Rings the delivery worker after the outbox rows of a change were committed.
        self._wake: Callable[[], None] = notices.ring if notices is not None else _nothing
        # Called with each changed invitation's id after the commit (the manager's live card).
        self._on_change = on_change
        # Retries a revocation Facebook did not confirm (the same as for a manager's /revoke).
        self._revocations = revocations

    def verify(self, signed_request: str) -> SignedRequest | SignatureProblem:
        signed = parse_signed_request(signed_request, app_secret=self._app_secret)
        if isinstance(signed, SignatureProblem):
            return signed
        return check_fresh(signed, now=time.time())

    # --- Meta's callbacks ----------------------------------------------------------------------

    async def deauthorize(self, facebook_user_id: str) -> int:
        """The person removed the app on Facebook: their connections end, their tokens go, the
        managers hear it. Returns how many connections ended (0 for a repeated callback)."""
        affected = await self._db.privacy.disconnect_facebook_user(
            facebook_user_id=facebook_user_id,
            notices=self._notices(
                "privacy.manager_deauthorized", influencer_key="privacy.influencer_deauthorized"
            ),
        )
        log.info("deauthorize: %d connection(s) ended", len(affected))
        await self._after(affected)
        return len(affected)

    async def delete_data(
        self, facebook_user_id: str, issued_at: int | None = None
    ) -> DeletionReceipt:
        """Record the request, delete, and answer with the status URL. Should the deletion be
        interrupted, the request stays "received" and `finish_deletions` completes it. The same
        signed_request again (same user, same `issued_at`) is the same request: its receipt
        again, no second one."""
        request = await self._db.privacy.open_deletion_request(
            facebook_user_id=facebook_user_id,
            confirmation_code=new_confirmation_code(),
            issued_at=issued_at,
        )
        try:
            await self._complete(request)
        except Exception:
            log.exception("data deletion %s interrupted; the periodic job finishes it", request.id)
        return DeletionReceipt(
            url=f"{self._public_url}{STATUS_PATH}{request.confirmation_code}",
            confirmation_code=request.confirmation_code,
        )

    async def deletion_status(self, code: str) -> DeletionRequest | None:
        if not CONFIRMATION_CODE.fullmatch(code):
            return None
        return await self._db.privacy.deletion_request(code)

    async def finish_deletions(self) -> int:
        """Periodic: complete requests a crash left half done."""
        done = 0
        for request in await self._db.privacy.unfinished_deletion_requests(
            older_than=utcnow() - UNFINISHED_AFTER
        ):
            if await self._complete(request) is not None:
                done += 1
        return done

    async def _complete(self, request: DeletionRequest) -> list[Affected] | None:
        assert request.id is not None
        affected = await self._db.privacy.complete_deletion_request(
            request_id=request.id, notices=self._notices("privacy.manager_deleted")
        )
        if affected is not None:
            log.info("data deletion %s: %d connection(s) deleted", request.id, len(affected))
            await self._after(affected)
        return affected

    # --- /forget -------------------------------------------------------------------------------

    async def forgettable(self, telegram_user_id: int) -> list[Invitation]:
        """The invitations /forget would close and whose connection data it would delete."""
        return await self._db.privacy.forgettable(telegram_user_id)

    async def holds_token(self, telegram_user_id: int) -> bool:
        """Whether /forget could withdraw the app's access at Facebook (an access token of this
        person's is stored); without one, the person is told how to remove the app there."""
        return bool(await self._db.privacy.sealed_tokens_of(telegram_user_id))

    async def login_paths(self, telegram_user_id: int) -> set[LoginPath]:
        """The ways in of this person's stored connections: an Instagram Login connection's
        access cannot be withdrawn by the bot, so /forget words it differently."""
        return await self._db.privacy.login_paths_of(telegram_user_id)

    async def forget(self, telegram_user_id: int) -> int:
        """Delete what this Telegram user's connections stored, close their invitations, tell
        the managers. Returns how many invitations it touched."""
        tokens = await self._db.privacy.sealed_tokens_of(telegram_user_id)
        affected = await self._db.privacy.forget_telegram_user(
            telegram_user_id=telegram_user_id, notices=self._notices("privacy.manager_forgot")
        )
        log.info("forget: %d invitation(s), %d token(s)", len(affected), len(tokens))
        await self._after(affected)
        # The person asked for it in our chat, not on Facebook: withdraw the app's access there
        # too. Should Facebook not confirm, the token is kept (encrypted, apart from the deleted
        # connection) only until a retry succeeds. Instagram Login tokens are not among them
        # (`sealed_tokens_of`): Instagram Login has no API to revoke an app's grant, so they
        # are only deleted, with their connection.
        for sealed in tokens:
            await self._revoke_at_facebook(sealed)
        return len(affected)

    async def _revoke_at_facebook(self, sealed: str) -> None:
        if self._revocations is not None:
            await self._revocations.revoke_sealed(sealed)
            return
        if self._graph is None or self._vault is None:
            return
        token = self._vault.open(sealed)
        if token is None:
            return
        try:
            await self._graph.revoke(token)
        except GraphError as exc:
            log.warning("revoking at Facebook failed: %s", exc)

    # --- notices -------------------------------------------------------------------------------

    def _notices(
        self, key: str, *, influencer_key: str | None = None
    ) -> Callable[[Affected, Mapping[int, Person]], list[Outgoing]]:
        """Composes, inside the storage transaction, the notice for the brand's current managers
        and its team chat, each in its language (a group chat has none: the default). Each is
        checked again when delivered (someone removed in between does not get it). With
        `influencer_key`, the influencer is told too (what ended, and that the brand knows)."""

        def compose(affected: Affected, people: Mapping[int, Person]) -> list[Outgoing]:
            invite = affected.invitation
            brand_id = invite.brand_id

            def notice(
                chat: int,
                audience: OutboxAudience | None = None,
                manager_id: int | None = None,
            ) -> Outgoing:
                text = self._texts(people.get(chat))(key, handle=invite.handle)
                return outgoing(
                    chat,
                    Screen(text),
                    kind=OutboxKind.NOTICE,
                    invitation_id=invite.id,
                    audience=audience,
                    brand_id=brand_id,
                    manager_id=manager_id,
                )

            own: list[Outgoing] = []
            if influencer_key is not None and invite.telegram_user_id is not None:
                person = invite.telegram_user_id
                t = self._texts(people.get(person))
                text = t(influencer_key, handle=invite.handle, inviter=invite.inviter_name)
                # The app removed by mistake: Reconnect, as the health check's notice offers.
                reconnect = InlineKeyboardMarkup(
                    [
                        [
                            InlineKeyboardButton(
                                t.plain("health.button_reconnect"),
                                callback_data=Renew(invite.id or 0).pack(),
                            )
                        ]
                    ]
                )
                own.append(outgoing(person, Screen(text, reconnect), invitation_id=invite.id))
            if brand_id is None:  # from before brands existed: its creator only
                return [*own, notice(invite.created_by)]
            told = [
                *own,
                *(notice(m, OutboxAudience.MANAGER, manager_id=m) for m in affected.managers),
            ]
            if affected.team_chat_id is not None:
                told.append(notice(affected.team_chat_id, OutboxAudience.TEAM))
            return told

        return compose

    def _texts(self, person: Person | None) -> Texts:
        return Texts(
            pick_language(
                chosen=person.language if person else None,
                telegram_code=person.telegram_language if person else None,
                default=self._default,
            )
        )

    async def _after(self, affected: Sequence[Affected]) -> None:
        if not affected:
            return
        self._wake()
        if self._on_change is None:
            return
        for item in affected:
            assert item.invitation.id is not None
            try:
                await self._on_change(item.invitation.id)
            except Exception:
                log.exception("could not refresh invitation %s", item.invitation.id)
