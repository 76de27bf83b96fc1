"""Graph's rate limits as the stand-in enforces them: calls counted in a sliding hour per app,
per user, per Page (calls made with a Page token) and per Instagram account (Business Use Case
limits), each with a settable limit per hour, and the usage headers Graph sends on every answer.

Meta's wording and codes (meta-platform.md §7): app limit ``(#4) Application request limit
reached``, user limit ``(#17) User request limit reached``, Page limit ``(#32) Page request limit
reached``, Instagram account ``(#80002)``. All come with HTTP 400 and ``is_transient``. Usage is
reported in percent of the limit: ``X-App-Usage: {"call_count", "total_cputime", "total_time"}``
on every answer, ``X-Business-Use-Case-Usage: {"<object id>": [{"type", "call_count",
"total_cputime", "total_time", "estimated_time_to_regain_access"}]}`` on answers about a Page or
an Instagram account. The time is the stand-in's clock, so a fast-forward also empties the window.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field

from .errors import GraphError

HOUR = 3600.0


@dataclass(frozen=True)
class CallKeys:
    """Who a Graph call is counted against."""

    user_id: str | None = None
    page_id: str | None = None  # made with this Page's token
    instagram_id: str | None = None  # about this Instagram account


@dataclass
class RateLimits:
    """Limits per hour; None means unlimited (the default)."""

    app_per_hour: int | None = None
    user_per_hour: int | None = None
    page_per_hour: int | None = None
    instagram_per_hour: int | None = None
    refused: int = 0  # calls answered with a rate-limit error
    _calls: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, keys: CallKeys, now: float) -> GraphError | None:
        """Count the call, or return the error Graph answers once a limit is reached (a
        refused call is not counted)."""
        for key, limit, error in self._checks(keys):
            if limit is not None and len(self._window(key, now)) >= limit:
                self.refused += 1
                return error
        for key, _, _ in self._checks(keys):
            self._window(key, now).append(now)
        return None

    def headers(self, keys: CallKeys, now: float) -> dict[str, str]:
        app_percent = self._percent("app", self.app_per_hour, now)
        usage = {"call_count": app_percent, "total_cputime": 1, "total_time": 1}
        headers = {"X-App-Usage": json.dumps(usage, separators=(",", ":"))}
        business: dict[str, list[dict[str, object]]] = {}
        if keys.page_id is not None:
            business[keys.page_id] = [
                self._business("pages", f"page:{keys.page_id}", self.page_per_hour, now)
            ]
        if keys.instagram_id is not None:
            business[keys.instagram_id] = [
                self._business("instagram", f"ig:{keys.instagram_id}", self.instagram_per_hour, now)
            ]
        if business:
            headers["X-Business-Use-Case-Usage"] = json.dumps(business, separators=(",", ":"))
        return headers

    # -- inside ---------------------------------------------------------------------------------

    def _checks(self, keys: CallKeys) -> list[tuple[str, int | None, GraphError]]:
        checks = [("app", self.app_per_hour, _limited(4, "(#4) Application request limit reached"))]
        if keys.user_id is not None:
            user_error = _limited(17, "(#17) User request limit reached", subcode=2446079)
            checks.append((f"user:{keys.user_id}", self.user_per_hour, user_error))
        if keys.page_id is not None:
            page_error = _limited(32, "(#32) Page request limit reached")
            checks.append((f"page:{keys.page_id}", self.page_per_hour, page_error))
        if keys.instagram_id is not None:
            ig_error = _limited(
                80002,
                "(#80002) There have been too many calls to this Instagram account. Wait a bit "
                "and try again.",
            )
            checks.append((f"ig:{keys.instagram_id}", self.instagram_per_hour, ig_error))
        return checks

    def _window(self, key: str, now: float) -> deque[float]:
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - HOUR:
            calls.popleft()
        return calls

    def _percent(self, key: str, limit: int | None, now: float) -> int:
        if not limit:
            return 0
        return min(100, math.ceil(100 * len(self._window(key, now)) / limit))

    def _business(self, kind: str, key: str, limit: int | None, now: float) -> dict[str, object]:
        percent = self._percent(key, limit, now)
        regain = 0
        calls = self._window(key, now)
        if limit and len(calls) >= limit:
            # Minutes until the oldest call in the window leaves it.
            regain = max(1, math.ceil((calls[0] + HOUR - now) / 60))
        return {
            "type": kind,
            "call_count": percent,
            "total_cputime": 1,
            "total_time": 1,
            "estimated_time_to_regain_access": regain,
        }


def _limited(code: int, message: str, *, subcode: int | None = None) -> GraphError:
    return GraphError(code, message, subcode=subcode, http_status=400, is_transient=True)
