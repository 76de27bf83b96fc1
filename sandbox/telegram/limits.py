"""Flood control as Telegram's answers show it: 429 with ``retry_after`` over the limits."""

from __future__ import annotations

import math
from collections import deque


class SlidingWindow:
    """At most ``per_second`` accepted sends in any window, the way Telegram's flood control
    feels from outside. Rates below 1/s become "one per 1/rate seconds"."""

    def __init__(self, per_second: float) -> None:
        self.capacity = max(1, math.floor(per_second))
        self.span = self.capacity / per_second
        self._accepted: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        while self._accepted and self._accepted[0] <= now - self.span:
            self._accepted.popleft()
        if len(self._accepted) < self.capacity:
            return None
        # Telegram only ever says whole seconds, and never 0.
        return max(1, math.ceil(self._accepted[0] + self.span - now))

    def accept(self, now: float) -> None:
        self._accepted.append(now)
