"""Secrets of a login under way, at rest and in the browser.

* A live OAuth state is kept sealed (Fernet, with a key derived from the app secret), so the
  same login button can be shown again instead of minting a new state per message; it is erased
  when the state is used, replaced or expired. Whoever could open it could also use it only
  together with the app secret, which the bot holds anyway.
* A redirect that comes back to a browser other than the one that started the login waits for a
  confirmation; its parameters (the code) are kept sealed the same way until then.
* The login cookie binds a state to the browser that opened `/oauth/start`; only its hash is
  stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken

_LABEL = b"connect-bot login secrets v1"

# The cookie of the browser that started a login (sent only to /oauth/...).
LOGIN_COOKIE = "cb_login"


class LoginSealer:
    def __init__(self, app_secret: str) -> None:
        key = hmac.new(app_secret.encode("utf-8"), _LABEL, hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, sealed: str | None) -> str | None:
        if not sealed:
            return None
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None

    def seal_params(self, params: dict[str, str]) -> str:
        return self.seal(json.dumps(params, separators=(",", ":")))

    def open_params(self, sealed: str | None) -> dict[str, str] | None:
        text = self.open(sealed)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return {str(k): str(v) for k, v in data.items()}
