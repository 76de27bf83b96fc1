"""setMyCommands / getMyCommands: command menus by scope and language."""

from __future__ import annotations

import json
import re
from typing import Any

from .model import JsonDict

COMMAND_SCOPES = frozenset(
    {
        "default", "all_private_chats", "all_group_chats", "all_chat_administrators", "chat",
        "chat_administrators", "chat_member",
    }
)  # fmt: skip
COMMAND_RE = re.compile(r"[a-z0-9_]+")


def scope_key(scope: JsonDict | None, language_code: str = "") -> str:
    """ "default", or the scope as JSON with sorted keys; "|<language>" appended if any."""
    if not scope or scope.get("type") == "default":
        key = "default"
    else:
        key = json.dumps(scope, sort_keys=True)
    return f"{key}|{language_code}" if language_code else key


class CommandMenus(dict[str, list[JsonDict]]):
    """setMyCommands results by scope. Lookups accept the scope JSON in any key order or spacing,
    so ``commands[json.dumps({"type": "chat", "chat_id": 42})]`` finds the menu PTB set."""

    @staticmethod
    def _normalise(key: object) -> object:
        if not isinstance(key, str):
            return key
        scope, separator, language = key.rpartition("|")
        if not separator or not scope.endswith("}"):
            scope, language = key, ""
        try:
            parsed = json.loads(scope)
        except ValueError:
            return key  # "default" or "default|de"
        return scope_key(parsed, language) if isinstance(parsed, dict) else key

    def __getitem__(self, key: str) -> list[JsonDict]:
        return super().__getitem__(str(self._normalise(key)))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._normalise(key))

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(str(self._normalise(key)), default)
