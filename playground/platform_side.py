"""The "platform" pane: the brand's own systems, as a platform would run them, in the playground.

It receives the brand's webhooks (a route of the playground's web app) and checks each signature
itself, the way docs/webhooks.md tells a platform to (HMAC-SHA256 over "<t>.<body>" with the
signing secret, compared in constant time, the timestamp within five minutes): deliberately not
with `bot.webhooks`, so a mistake there shows here as ✗. It reads the brand's connections through
the bot's read API with the brand's key, like any client of it.

The composition root attaches the brand once it exists (`Playground._attach_platform`, through
`Platform.ready`): its webhook URL, the signing secret and an API key, created through the bot's
own services as the admin commands do.
The secret and the key stay in this object: the page sees neither (only the key's public prefix),
and a Page access token in an API answer reaches the page masked to its last four characters.

The pane follows what an admin changes in the playground, as a platform's people would by hand:
an event whose signature fails with the known secret makes it read the brand's current secret
again (after `/webhook <brand> <url>` or `… rotate`) and check that event again; a key refused
with 401 (revoked with `/apikey`) is replaced by a new one, made as at the start. The pane says
so (`view`: ``webhook_note``, ``key_note``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import httpx

JsonDict = dict[str, Any]

log = logging.getLogger(__name__)

RECEIVER_PATH = "/platform/webhook"
SIGNATURE_HEADER = "Connect-Bot-Signature"  # docs/webhooks.md
# A signed request older (or newer) than this is refused by a careful platform: a replay.
TOLERANCE_SECONDS = 300
KEEP = 100
MASKED_FIELD = "page_access_token"
_SHOWN_TAIL = 4
_API_TIMEOUT = 10.0
_TEXT_SHOWN = 500


class Signature(StrEnum):
    OK = "ok"
    MISSING = "missing"  # no signature header, or one without t= and v1=
    MISMATCH = "mismatch"  # signed with another secret (say, after `/webhook … rotate`)
    STALE = "stale"  # the right signature, but its time is more than five minutes off
    NO_SECRET = "no_secret"  # the playground has not attached the brand (yet)


def verify(secret: str, header: str | None, body: bytes, *, now: float) -> Signature:
    """docs/webhooks.md's check, written from the doc: `t=<unix time>,v1=<hex>`, the HMAC over
    `<t>.<body>`; any of several v1 values may match (a receiver must accept them all)."""
    if not header:
        return Signature.MISSING
    timestamp, candidates = "", []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            candidates.append(value)
    if not timestamp.isascii() or not timestamp.isdigit() or not candidates:
        return Signature.MISSING
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected, given) for given in candidates):
        return Signature.MISMATCH
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return Signature.STALE
    return Signature.OK


def mask(value: Any) -> Any:
    """The API's answer as the page may show it: every Page access token cut to its tail."""
    if isinstance(value, dict):
        return {
            key: (
                "…" + item[-_SHOWN_TAIL:]
                if key == MASKED_FIELD and isinstance(item, str)
                else mask(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask(item) for item in value]
    return value


@dataclass(frozen=True)
class Attachment:
    """The brand the platform belongs to, and what the platform keeps of it."""

    brand_id: int
    brand_name: str
    webhook_url: str
    api_url: str  # the bot's callback server, where /api/v1/ is
    key_prefix: str
    secret: str = field(repr=False)
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class Received:
    number: int
    at: float
    event_id: str
    type: str
    handle: str | None
    reason: str | None
    signature: Signature
    answered: int
    again: bool  # this event id came before: a retry, or a delivery again after a restart
    rechecked: bool = False  # ✗ at first, then checked again with the brand's new secret

    def to_json(self) -> JsonDict:
        return {
            "number": self.number,
            "at": self.at,
            "id": self.event_id,
            "type": self.type,
            "handle": self.handle,
            "reason": self.reason,
            "signature": str(self.signature),
            "signature_ok": self.signature == Signature.OK,
            "answered": self.answered,
            "again": self.again,
            "rechecked": self.rechecked,
        }


@dataclass(frozen=True)
class ApiAnswer:
    request: str
    status: int  # 0: the bot's server did not answer
    body: Any

    def to_json(self) -> JsonDict:
        return {"request": self.request, "status": self.status, "body": self.body}


class Platform:
    """The receiver's memory (the last `KEEP` events) and the API client. ``on_change`` is
    called after every event, so the page's live stream sends the new state; ``attach`` looks
    for the brand and calls `attach_to` when there is one (`ready`). ``current_secret`` reads
    the brand's signing secret as the bot has it now (None: no webhook); ``new_key`` makes a new
    API key for the brand, as at the start, and returns its (prefix, key)."""

    def __init__(
        self,
        *,
        on_change: Callable[[], None],
        attach: Callable[[], Awaitable[None]] | None = None,
        current_secret: Callable[[Attachment], Awaitable[str | None]] | None = None,
        new_key: Callable[[Attachment], Awaitable[tuple[str, str]]] | None = None,
    ) -> None:
        self._on_change = on_change
        self._attach = attach
        self._current_secret = current_secret
        self._new_key = new_key
        self._attaching = asyncio.Lock()
        self._renewing = asyncio.Lock()  # one change of the secret or the key at a time
        self._rechecks: set[asyncio.Task[None]] = set()
        self.webhook_note: str | None = None
        self.key_note: str | None = None
        self._attachment: Attachment | None = None
        self._problem: str | None = None
        self._events: deque[Received] = deque(maxlen=KEEP)
        self._count = 0
        self.failing = False  # "Answer 500": every delivery fails, so the bot retries

    @property
    def attachment(self) -> Attachment | None:
        return self._attachment

    async def ready(self) -> None:
        """Attached, if the brand exists by now. Cheap once attached; one at a time (two
        attachments would leave the pane with a secret the bot no longer signs with)."""
        if self._attachment is not None or self._attach is None or self._problem:
            return
        async with self._attaching:
            if self._attachment is not None or self._problem:
                return
            try:
                await self._attach()
            except Exception as exc:  # the page's message must still go through
                log.warning("the platform pane could not attach: %s", type(exc).__name__)

    def attach_to(self, attachment: Attachment) -> None:
        self._attachment, self._problem = attachment, None
        self._on_change()

    def unavailable(self, problem: str) -> None:
        self._problem = problem
        self._on_change()

    def set_failing(self, failing: bool) -> None:
        self.failing = failing
        self._on_change()

    @property
    def events(self) -> list[Received]:
        """Newest first."""
        return list(reversed(self._events))

    def receive(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> int:
        """One POST to the receiver; the HTTP status to answer, or 400 for what is not an event
        at all (not recorded). A bad signature is recorded as ✗ and still acknowledged: the
        pane is there to show it, not to make the bot retry it for a day."""
        try:
            event = json.loads(body)
        except ValueError:
            return 400
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            return 400
        at = time.time() if now is None else now
        secret = self._attachment.secret if self._attachment is not None else None
        checked = (
            verify(secret, headers.get(SIGNATURE_HEADER), body, now=at)
            if secret is not None
            else Signature.NO_SECRET
        )
        invitation = event.get("invitation")
        handle = invitation.get("handle") if isinstance(invitation, dict) else None
        event_id = event["id"]
        answered = 500 if self.failing else 200
        self._count += 1
        self._events.append(
            Received(
                number=self._count,
                at=at,
                event_id=event_id,
                type=str(event.get("type", "")),
                handle=handle if isinstance(handle, str) else None,
                reason=_text(event.get("reason")),
                signature=checked,
                answered=answered,
                again=any(e.event_id == event_id for e in self._events),
            )
        )
        if checked == Signature.MISMATCH and self._current_secret is not None:
            # Perhaps an admin gave the brand a new secret: look, and check this event again.
            task = asyncio.create_task(
                self._recheck(self._count, headers.get(SIGNATURE_HEADER), body, at)
            )
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)
        self._on_change()
        return answered

    async def _recheck(self, number: int, header: str | None, body: bytes, at: float) -> None:
        try:
            async with self._renewing:
                attachment = self._attachment
                if attachment is None or self._current_secret is None:
                    return
                secret = await self._current_secret(attachment)
                if secret is None:
                    return  # the brand has no webhook now
                if secret != attachment.secret:
                    self._attachment = replace(attachment, secret=secret)
                    self.webhook_note = (
                        f"The brand's signing secret changed (/webhook) at {_clock()}: "
                        "the pane read the new one from the bot and checks with it since."
                    )
                checked = verify(secret, header, body, now=at)
                if checked != Signature.MISMATCH:
                    self._events = deque(
                        (_rechecked(e, checked) if e.number == number else e for e in self._events),
                        maxlen=KEEP,
                    )
            self._on_change()
        except Exception as exc:  # the pane keeps the event as ✗
            log.warning("the platform pane could not read the secret again: %s", type(exc).__name__)

    async def close(self) -> None:
        """Before the bot stops: no more looks at its secret."""
        for task in list(self._rechecks):
            task.cancel()
        await asyncio.gather(*self._rechecks, return_exceptions=True)

    async def read(self, path: str) -> ApiAnswer:
        """GET ``path`` (under /api/v1/) from the bot's read API with the brand's key."""
        request = f"GET {path}"
        await self.ready()
        attachment = self._attachment
        if attachment is None:
            problem = self._problem or "the brand does not exist yet (Maria's first /invite)"
            return ApiAnswer(request, 0, {"error": problem})
        answer = await _get(attachment, path)
        if answer is not None and answer.status_code == 401 and self._new_key is not None:
            renewed = await self._renew_key(attachment)
            if renewed is not None:
                answer = await _get(renewed, path)
        if answer is None:
            return ApiAnswer(request, 0, {"error": "the bot's callback server did not answer"})
        try:
            body: Any = answer.json()
        except ValueError:
            body = {"text": answer.text[:_TEXT_SHOWN]}
        return ApiAnswer(request, answer.status_code, mask(body))

    async def _renew_key(self, refused: Attachment) -> Attachment | None:
        """A new key in place of ``refused``'s (revoked, say, with /apikey); None if none."""
        assert self._new_key is not None
        async with self._renewing:
            current = self._attachment
            if current is None:
                return None
            if current.api_key != refused.api_key:
                return current  # another call has made a new one already
            try:
                prefix, key = await self._new_key(current)
            except Exception as exc:
                log.warning("the platform pane could not make a new key: %s", type(exc).__name__)
                return None
            self._attachment = replace(current, key_prefix=prefix, api_key=key)
        self.key_note = (
            f"The bot refused the key {refused.key_prefix}… (HTTP 401: revoked?) at {_clock()}: "
            f"the pane made a new one, {prefix}…, as at the start."
        )
        self._on_change()
        return self._attachment

    def view(self) -> JsonDict:
        """What the page shows: never the secret or the key, only the key's public prefix."""
        attachment = self._attachment
        return {
            "attached": attachment is not None,
            "problem": self._problem,
            "brand": attachment.brand_name if attachment is not None else None,
            "webhook_url": attachment.webhook_url if attachment is not None else None,
            "api_url": attachment.api_url if attachment is not None else None,
            "key_prefix": attachment.key_prefix if attachment is not None else None,
            "webhook_note": self.webhook_note,
            "key_note": self.key_note,
            "failing": self.failing,
            "received": self._count,
            "events": [e.to_json() for e in self.events],
        }


async def _get(attachment: Attachment, path: str) -> httpx.Response | None:
    try:
        async with httpx.AsyncClient(base_url=attachment.api_url, timeout=_API_TIMEOUT) as http:
            return await http.get(path, headers={"Authorization": f"Bearer {attachment.api_key}"})
    except httpx.HTTPError:
        return None


def _rechecked(event: Received, signature: Signature) -> Received:
    return replace(event, signature=signature, rechecked=True)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
