"""The same one-line answer to typed text is not sent twice in a row within a short time.

Someone typing ten messages in a few seconds would otherwise get ten identical lines ("Please use
the buttons …", "Your account is connected …"): the first one is in the chat right above, the
others only push it away. Kept in memory, per person: a cosmetic measure (a restart or another
replica at worst sends the line once more), never a decision about the flow.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# A line answered again after this long is sent again (the earlier one may be out of sight).
SAME_LINE_WINDOW = 30.0  # seconds
_MAX_PEOPLE = 10_000


class RecentLines:
    """The last one-line answer per person and when it was sent."""

    def __init__(
        self, *, window: float = SAME_LINE_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._last: dict[int, tuple[str, float]] = {}

    def fresh(self, person: int, line: str) -> bool:
        """Whether `line` is to be sent to `person` (and noted as sent): not when it is the
        same line they got last, within the window."""
        now = self._clock()
        last = self._last.get(person)
        if last is not None and last[0] == line and now - last[1] < self._window:
            return False
        if len(self._last) >= _MAX_PEOPLE:
            self._last = {p: v for p, v in self._last.items() if now - v[1] < self._window}
        self._last[person] = (line, now)
        return True

    def forget(self, person: int) -> None:
        """Something else was shown to the person: their next line is sent whatever it is."""
        self._last.pop(person, None)
