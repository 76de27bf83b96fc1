"""An invitation's history as the brand's manager reads it in `/show`: one sentence per event,
in the manager's language, with its particulars (which Page, which account, which permissions).

A login result's particulars come from its stored facts (`bot.facts`). No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.facts import VerdictFacts
from bot.fit import telegram_length
from bot.i18n import Html, Texts, moment_text
from bot.models import InvitationEvent, LoginPath
from bot.screens import connected_for_manager, manager_reason
from bot.verdict import Outcome

# A check's event detail is "step:answer"; its sentence `console.timeline.<topic>_<answer>`. The
# ways in (issue 13): the question which one fits ("path:yes|no|unsure", or "path:facebook|
# instagram" where the way tapped had closed meanwhile), Instagram Login's check
# ("ig_professional:yes|done|no|how|facebook"), and "login:instagram" (Instagram Login instead,
# after a failed Facebook login).
_CHECK_TOPICS = {
    "page_public": "public",
    "page_linked": "linked",
    "path": "path",
    "ig_professional": "professional",
    "login": "switched",
}
_CHECK_ANSWERS = {
    "public": ("yes", "done", "no", "how"),
    "linked": ("yes", "done", "no", "how"),
    "path": ("yes", "no", "unsure", "facebook", "instagram"),
    "professional": ("yes", "done", "no", "how", "facebook"),
    "switched": ("instagram",),
}


# A login_started event's detail (`bot.store.logins`): why a new login was handed out, and on the
# Instagram path which window it opens.
_LOGIN_DETAILS = frozenset({"rerequest", "again", "instagram", "instagram_again"})
# Outcomes of `bot.instagram_verdict.IgOutcome` with the same value as Facebook's (their
# ``manager.reason`` texts name Facebook).
_SHARED_OUTCOMES = frozenset({"cancelled", "login_error", "login_expired"})


def sentence(
    t: Texts, event: InvitationEvent, *, handle: str, platform: str, path: str | None = None
) -> Html:
    """One event as the manager reads it; never an internal code. `path`: the way in of the
    connection the event is about (`LoginPath` value; None: Facebook's), so that a kept
    connection's life is told in Instagram's words for an Instagram Login (see `paths_of`)."""
    kind, detail = event.kind, event.detail or ""
    if kind == "verdict":
        return _verdict_sentence(t, event, handle=handle, platform=platform)
    if kind in ("check_passed", "check_answered"):
        step, _, answer = detail.partition(":")
        topic = _CHECK_TOPICS.get(step)
        if topic is not None and answer in _CHECK_ANSWERS[topic]:
            return t(f"console.timeline.{topic}_{answer}", handle=handle)
    if kind == "login_started" and detail in _LOGIN_DETAILS:
        return t(f"console.timeline.login_{detail}", handle=handle)
    if kind == "data_deleted" and t.has(f"console.timeline.data_deleted_{detail}"):
        return t(f"console.timeline.data_deleted_{detail}", handle=handle)
    if kind in ("health", "renewal_asked", "renewed"):
        told = _health_sentence(t, kind, detail, handle=handle, path=path)
        if told is not None:
            return told
    if kind == "token_read":
        # Detail: the prefix of the API key that read it (the key's name, not the key).
        return t("console.timeline.token_read", handle=handle, prefix=detail)
    if t.has(f"console.timeline.{kind}"):
        return t(f"console.timeline.{kind}", handle=handle)
    # A kind this module does not know yet: its short name, never the raw detail.
    what = t.plain(f"console.event.{kind}") if t.has(f"console.event.{kind}") else kind
    return t("console.timeline.other", what=what)


def _health_sentence(
    t: Texts, kind: str, detail: str, *, handle: str, path: str | None
) -> Html | None:
    """A kept connection's life (issue 11): its health changed (detail "state" or
    "state:reason"), the influencer was asked to renew (detail: days before access ends), or
    renewed. None for a detail this release does not know (the generic sentence then). An
    Instagram Login connection (issue 13) has no Page: its own words where they differ."""
    instagram = path == LoginPath.INSTAGRAM
    own = "_instagram" if instagram else ""
    if kind == "renewed":
        # Detail "reconnected": it had broken and works again.
        key = "timeline_reconnected" if detail == "reconnected" else "timeline_renewed"
        return t(f"console.health.{key}{own}", handle=handle)
    if kind == "renewal_asked":
        if not (detail.isascii() and detail.isdigit()):
            return None
        return t("console.health.timeline_renewal_asked", handle=handle, count=int(detail))
    state, _, reason = detail.partition(":")
    key = f"console.health.timeline_{state}"
    if not state.isidentifier() or not t.has(key):
        return None
    if instagram and t.has(f"{key}_instagram"):
        key = f"{key}_instagram"
    named = f"console.health.reason.{reason or 'unknown'}"
    if instagram and reason and t.has(f"health_instagram.console.{reason}"):
        named = f"health_instagram.console.{reason}"
    words = t.plain(named) if t.has(named) else t.plain("console.health.reason.unknown")
    return t(key, reason=words)


def paths_of(events: Sequence[InvitationEvent]) -> list[str | None]:
    """For each event (oldest first), the way in it is about: the latest login's up to then (a
    connected verdict's stored path, a login handed out for Instagram, a step of one way's
    checks). None where no way is known yet (Facebook's words then)."""
    paths: list[str | None] = []
    path: str | None = None
    for event in events:
        kind, detail = event.kind, event.detail or ""
        if kind == "verdict":
            facts = VerdictFacts.from_json(event.facts)
            if facts is not None:
                path = facts.path or LoginPath.FACEBOOK.value
        elif kind == "login_started":
            path = (
                LoginPath.INSTAGRAM.value
                if detail.startswith("instagram")
                else LoginPath.FACEBOOK.value
            )
        elif kind in ("check_passed", "check_answered"):
            step = detail.partition(":")[0]
            if step in ("ig_professional", "login"):
                path = LoginPath.INSTAGRAM.value
            elif step in ("page_public", "page_linked"):
                path = LoginPath.FACEBOOK.value
        paths.append(path)
    return paths


def timeline(
    t: Texts,
    events: Sequence[InvitationEvent],
    *,
    handle: str,
    platform: str,
    room: int,
    path: str | None = None,
) -> list[str]:
    """The newest events that fit in `room` (Telegram's measure, see `bot.fit`), oldest first;
    when some had to go, a first line says how many earlier ones are not shown. `path`: the
    connection's way in, if the caller has it (else each event's is read off the events)."""
    lines: list[str] = []
    used = 0
    ways = paths_of(events)
    for shown, event in enumerate(reversed(events)):
        way = ways[len(events) - shown - 1]
        line = t(
            "console.show.line",
            time=moment_text(t, event.at),
            sentence=sentence(
                t,
                event,
                handle=handle,
                platform=platform,
                path=way if way is not None else path,
            ),
        )
        left_out = len(events) - shown - 1
        # Keep room for the "N earlier events" line while older events remain.
        reserve = telegram_length(t("console.show.earlier", count=left_out)) + 1 if left_out else 0
        if used + telegram_length(line) + 1 + reserve > room:
            lines.append(t("console.show.earlier", count=len(events) - shown))
            break
        lines.append(line)
        used += telegram_length(line) + 1
    return list(reversed(lines))


def _verdict_sentence(t: Texts, event: InvitationEvent, *, handle: str, platform: str) -> Html:
    outcome = event.detail or ""
    facts = VerdictFacts.from_json(event.facts)
    if outcome == Outcome.CONNECTED:
        if facts is None or not facts.username:
            return t("console.timeline.connected_plain")
        if facts.path == LoginPath.INSTAGRAM:  # no Page on this path
            return connected_for_manager(
                t,
                "console.timeline.instagram",
                handle=handle,
                username=facts.username,
                page="",
                followers=facts.followers,
            )
        return connected_for_manager(
            t,
            "console.timeline",
            handle=handle,
            username=facts.username,
            page=facts.page,
            followers=facts.followers,
        )
    if facts is not None and facts.path == LoginPath.INSTAGRAM and outcome in _SHARED_OUTCOMES:
        # Outcomes both ways in share: said in Instagram's words for an Instagram Login.
        return t("console.timeline.failed", reason=t(f"ig_verdict.{outcome}.manager"))
    if facts is None:
        # Stored before particulars were kept, or erased since: the reason's short name.
        key = f"console.reason_name.{outcome}"
        reason = t(key) if t.has(key) else Html(outcome)
    else:
        reason = manager_reason(
            t,
            outcome,
            handle=handle,
            platform=platform,
            page=facts.page,
            pages=facts.pages,
            others=facts.others,
            declined=facts.declined,
        )
    return t("console.timeline.failed", reason=reason)
