"""The webhook sender: POSTs the brands' webhook deliveries (`bot.store.webhooks`), signed, run by
the leader only (the delivery worker's lease) in a task of its own, so a slow receiver never holds
up a chat message.

At least once: a row is claimed (pushed ahead by a hold longer than a POST may take), POSTed, then
marked; a process that dies in between leaves it to come due again with the same event id. In
order per invitation: only the oldest pending row of each invitation is claimed. A failure (no 2xx
answer, a timeout, a redirect, which is never followed) is retried with backoff for a day, then
the row is `failed`. The host is resolved for every POST and each address checked
(`bot.webhooks.address_problem`), and the POST goes to the address that was checked (the name
kept for TLS and the Host header), so a DNS answer that changes between the check and the
connection (rebinding) cannot reach the bot's own network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx

from bot.crypto import TokenVault
from bot.models import utcnow
from bot.store import Database, LeaderLease
from bot.store.webhooks import Claimed
from bot.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    RETRY_FOR,
    SIGNATURE_HEADER,
    UrlProblem,
    address_problem,
    check_url,
    retry_delay,
    signature,
)

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

# A round POSTs all it claimed at once (each to the head of its own invitation), so every claim
# ends within one POST's time limit, well within the hold.
BATCH = 16
POLL_SECONDS = 1.0
USER_AGENT = "ConnectBot-Webhooks/1"


class Failure(Exception):
    """One attempt failed; `code` is what the admin sees (`webhook.error.<code>`)."""

    def __init__(self, code: str, status_code: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status_code = status_code


class WebhookSender:
    def __init__(
        self,
        *,
        db: Database,
        lease: LeaderLease,
        vault: TokenVault,
        timeout: float,
        first_retry: float,
        allow_loopback: bool,
        metrics: Metrics | None = None,
        poll: float = POLL_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = db
        self._lease = lease
        self._vault = vault
        self._timeout = timeout
        self._first_retry = first_retry
        self._allow_loopback = allow_loopback
        self._metrics = metrics
        self._poll = poll
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=transport, trust_env=False
        )
        self._in_flight: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def hold(self) -> timedelta:
        """How long a claim keeps a row from others: beyond one POST's whole time limit."""
        return timedelta(seconds=3 * self._timeout + 5)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="webhook-sender")

    async def stop(self) -> None:
        """Stop at once: POSTs under way are abandoned and their rows due again (same ids)."""
        if self._task is not None:
            self._stopping.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        abandoned, self._in_flight = sorted(self._in_flight), set()
        try:
            await self._db.webhooks.release(abandoned, now=utcnow())
        except Exception:
            log.warning(
                "webhooks: %d claims not given back; due again after the hold", len(abandoned)
            )
        await self._client.aclose()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            sent = 0
            try:
                if self._lease.held:
                    sent = await self.run_once()
            except Exception:
                log.exception("webhooks: a round failed")
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._poll)

    async def run_once(self) -> int:
        """One round: claim what is due and POST it (different invitations at once). Returns how
        many rows were tried."""
        now = utcnow()
        claimed = await self._db.webhooks.claim_due(now=now, limit=BATCH, hold=now + self.hold)
        if not claimed:
            return 0
        self._in_flight.update(c.id for c in claimed)

        async def one(delivery: Claimed) -> None:
            await self._deliver(delivery)
            self._in_flight.discard(delivery.id)

        await asyncio.gather(*(one(c) for c in claimed))
        return len(claimed)

    async def _deliver(self, delivery: Claimed) -> None:
        try:
            status_code = await self._post(delivery)
        except Failure as failure:
            await self._failed(delivery, failure)
            return
        except Exception:
            log.exception("webhooks: delivery %s failed unexpectedly", delivery.event_id)
            await self._failed(delivery, Failure("internal"))
            return
        await self._db.webhooks.delivered(delivery.id, status_code=status_code)
        self._count("delivered")

    async def _failed(self, delivery: Claimed, failure: Failure) -> None:
        now = utcnow()
        at = now + timedelta(seconds=retry_delay(delivery.attempts, self._first_retry))
        final = failure.code in ("removed", "secret") or at - delivery.created_at > RETRY_FOR
        log.info(
            "webhooks: %s to brand %s failed (%s, attempt %d)%s",
            delivery.event_id,
            delivery.brand_id,
            failure.code if failure.status_code is None else f"HTTP {failure.status_code}",
            delivery.attempts,
            ", given up" if final else "",
        )
        if final:
            await self._db.webhooks.give_up(
                delivery.id, status_code=failure.status_code, error=failure.code
            )
            self._count("failed")
        else:
            await self._db.webhooks.retry(
                delivery.id, at=at, status_code=failure.status_code, error=failure.code
            )
            self._count("retry")

    async def _post(self, delivery: Claimed) -> int:
        if delivery.url is None:
            raise Failure("removed")
        secret = self._vault.open(delivery.secret_sealed) if delivery.secret_sealed else None
        if secret is None:
            raise Failure("secret")
        problem = check_url(delivery.url, allow_loopback=self._allow_loopback)
        if problem is not None:
            raise Failure(f"url_{problem}")
        target, host = await self._pinned(delivery.url)
        payload = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Host": host,
            SIGNATURE_HEADER: signature(secret, int(time.time()), payload),
            EVENT_ID_HEADER: delivery.event_id,
            EVENT_TYPE_HEADER: delivery.type,
        }
        hostname = urlsplit(delivery.url).hostname or ""
        try:
            # httpx's timeout is per read; a receiver trickling bytes must not outlast the hold.
            async with asyncio.timeout(2 * self._timeout):
                response = await self._client.post(
                    target,
                    content=payload,
                    headers=headers,
                    extensions={"sni_hostname": hostname},
                )
        except (httpx.TimeoutException, TimeoutError):
            raise Failure("timeout") from None
        except httpx.HTTPError:
            raise Failure("connect") from None
        if 200 <= response.status_code < 300:
            return response.status_code
        code = "redirect" if 300 <= response.status_code < 400 else "status"
        raise Failure(code, response.status_code)

    async def _pinned(self, url: str) -> tuple[str, str]:
        """The URL with its host replaced by a checked address, and the Host header to send."""
        parts = urlsplit(url)
        addresses = await _addresses(url)
        if addresses is None:
            raise Failure("dns")
        # Every address the name has must be allowed: which one a client picks is not ours.
        if any(address_problem(a, allow_loopback=self._allow_loopback) for a in addresses):
            raise Failure("private_address")
        chosen = addresses[0]
        shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{shown}:{_port(url)}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), parts.netloc

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.webhook_deliveries.labels(outcome=outcome).inc()


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


async def _addresses(url: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """The addresses the URL's host resolves to now (None: it does not resolve)."""
    hostname = urlsplit(url).hostname or ""
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            hostname, _port(url), type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        return None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return found or None


async def resolved_problem(url: str, *, allow_loopback: bool) -> UrlProblem | str | None:
    """Whether the URL's host resolves, and only to addresses a webhook may reach (checked when
    the URL is set, and again at every delivery)."""
    addresses = await _addresses(url)
    if addresses is None:
        return "dns"
    for address in addresses:
        problem = address_problem(address, allow_loopback=allow_loopback)
        if problem is not None:
            return problem
    return None
