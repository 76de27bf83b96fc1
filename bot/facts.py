"""The particulars of a login result that the brand's managers read later (`/show`): which
Page, which accounts, which permissions, the follower count. Known only when the result comes
in (`bot.connect`), so they are stored with its event as compact JSON
(`InvitationEvent.facts`); erased with the rest of the connection's data. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.instagram_verdict import IgVerdict
from bot.models import LoginPath
from bot.verdict import Verdict

# Enough for any real login; the JSON stays small whatever Facebook sent.
_MOST_PAGES = 10
_MOST_NAME = 100


@dataclass(frozen=True)
class VerdictFacts:
    """What the manager needs to know about one login result, beyond its outcome."""

    page: str = ""
    pages: tuple[tuple[str, str], ...] = ()  # (Page, Instagram account) linked elsewhere
    others: tuple[str, ...] = ()
    declined: tuple[str, ...] = ()
    username: str = ""
    followers: int | None = None
    # True when the brand's managers were sent a notice about this result: failures soon after
    # it only update that notice (while undelivered) and the live card (`bot.connect`).
    announced: bool = False
    # "instagram" for an Instagram Login (no Page to name); "" for Facebook's.
    path: str = ""

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "page": self.page[:_MOST_NAME],
            "pages": [[p[:_MOST_NAME], u] for p, u in self.pages[:_MOST_PAGES]],
            "others": list(self.others[:_MOST_PAGES]),
            "declined": list(self.declined),
            "username": self.username,
            "followers": self.followers,
            "announced": self.announced,
            "path": self.path,
        }
        return json.dumps(
            {k: v for k, v in data.items() if v not in ("", [], None, False)},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | None) -> VerdictFacts | None:
        """None for an event stored without facts (or with facts erased by a deletion)."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        followers = data.get("followers")
        return cls(
            page=_text(data.get("page")),
            pages=tuple(
                (_text(p[0]), _text(p[1]))
                for p in _list(data.get("pages"))
                if isinstance(p, list) and len(p) == 2
            ),
            others=tuple(_text(u) for u in _list(data.get("others"))),
            declined=tuple(_text(s) for s in _list(data.get("declined"))),
            username=_text(data.get("username")),
            followers=followers
            if isinstance(followers, int) and not isinstance(followers, bool)
            else None,
            announced=data.get("announced") is True,
            path=_text(data.get("path")),
        )


def verdict_facts(verdict: Verdict, *, followers: int | None) -> VerdictFacts:
    return VerdictFacts(
        page=verdict.page.name if verdict.page else "",
        pages=verdict.other_pages,
        others=verdict.other_accounts,
        declined=verdict.declined,
        username=verdict.instagram.username if verdict.instagram else "",
        followers=followers if verdict.connected else None,
    )


def instagram_verdict_facts(verdict: IgVerdict, *, followers: int | None) -> VerdictFacts:
    """An Instagram Login's particulars: no Pages; the account that logged in (`username` when
    connected, `others` when it was another than the invited one) and the permissions declined."""
    account = verdict.account
    other = verdict.other_account
    return VerdictFacts(
        others=(other,) if other else (),
        declined=verdict.declined,
        username=account.username if verdict.connected and account is not None else "",
        followers=followers if verdict.connected else None,
        path=LoginPath.INSTAGRAM.value,
    )


def was_announced(raw: str | None) -> bool:
    """Whether the managers were sent a notice about the login result stored with `raw`."""
    facts = VerdictFacts.from_json(raw)
    return facts is not None and facts.announced


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
