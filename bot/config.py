"""Settings, read once at start-up from the environment and a `.env` file.

Every name here is documented in `.env.example`. A missing or malformed value stops start-up with
one line naming the setting (see `load_settings`), never a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SCOPES = (
    "instagram_basic",
    "instagram_manage_insights",
    "pages_show_list",
    "pages_read_engagement",
    "business_management",
)
# Instagram Login (the second Meta app, issue 13): the scope values of Business Login for
# Instagram; instagram_business_basic is required by Instagram's window.
INSTAGRAM_BASIC_SCOPE = "instagram_business_basic"
DEFAULT_INSTAGRAM_SCOPES = (INSTAGRAM_BASIC_SCOPE, "instagram_business_manage_insights")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/connect-bot.sqlite3"
# Telegram's rule for setWebhook's secret_token.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Telegram delivers only to HTTPS; plain http is accepted for a local stand-in on loopback.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and is safe to print."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    # Empty: long polling. Set: updates arrive at /telegram/webhook of the callback server.
    telegram_webhook_url: str = ""
    # Declared after the URL: its validator reads the URL to know whether it is required.
    telegram_webhook_secret: SecretStr | None = Field(default=None, validate_default=True)

    facebook_app_id: str | None = None
    facebook_app_secret: SecretStr | None = None
    facebook_api_version: str = "v25.0"
    facebook_graph_url: str = "https://graph.facebook.com"
    facebook_dialog_url: str = "https://www.facebook.com"
    facebook_scopes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SCOPES
    # Logins verified at the same time (code exchange, Graph reads, verdict); further redirects
    # wait their turn, first come first served (`bot.connect`).
    facebook_max_concurrent_logins: int = Field(default=12, ge=1, le=200)

    # Instagram Login, through a second Meta app (Meta lets an app use Facebook Login or
    # Instagram Login, not both). Unset: the Facebook path only, as before.
    instagram_app_id: str | None = None
    instagram_app_secret: SecretStr | None = None
    instagram_scopes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_INSTAGRAM_SCOPES
    instagram_authorize_url: str = "https://www.instagram.com"
    instagram_token_url: str = "https://api.instagram.com"
    instagram_graph_url: str = "https://graph.instagram.com"

    public_url: str = "http://127.0.0.1:8080"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)

    database_url: str = DEFAULT_DATABASE_URL

    admin_telegram_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # Not "Connect": after "Facebook" it reads as Facebook's old product (Facebook Connect).
    platform_name: str = "Influencer Portal"
    default_language: Literal["de", "en"] = "en"

    invite_ttl_days: int = Field(default=14, ge=1, le=365)
    login_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)
    stall_hours: float = Field(default=24, gt=0, le=24 * 30)
    # One person's updates (messages and button presses alike): a burst of this many at once, then
    # this many per second; the rest is ignored and the person told once (`bot.updates`).
    person_update_burst: int = Field(default=8, ge=1, le=1000)
    person_updates_per_second: float = Field(default=1.0, gt=0, le=100)
    # Everything the bot puts in chats (replies, edits, notices) shares this many sends per second
    # (`bot.pace`): Telegram allows about 30; a bot with paid broadcasts enabled up to 1000.
    telegram_sends_per_second: float = Field(default=28.0, gt=0, le=1000)
    token_encryption_keys: SecretStr | None = None
    # Verify logins only and keep no access tokens: connections cannot be checked or renewed later
    # (connection health and renewal need the tokens). Without it, a real deployment needs
    # TOKEN_ENCRYPTION_KEYS.
    verify_only: bool = False
    # Connection health (`bot.upkeep`): every kept connection is checked this often (spread
    # over the interval), with at most this many Graph calls per second for all checks together;
    # the influencer is asked to renew this many days before data access ends (each lead once).
    health_check_interval_seconds: float = Field(default=86_400, ge=1, le=7 * 86_400)
    health_graph_calls_per_second: float = Field(default=5.0, gt=0, le=1000)
    renewal_lead_days: Annotated[tuple[int, ...], NoDecode] = (14, 3)
    # What the brand sees (`bot.profiles`): a connected account's profile and insights are read
    # again after this many hours (Instagram's own figures lag up to 48 hours); Refresh reads at
    # once, but not twice within a minute.
    profile_cache_hours: float = Field(default=6, gt=0, le=168)
    # The platform's webhooks (`bot.webhook_sender`, docs/webhooks.md): each POST waits this long
    # for an answer; a failed one is tried again after this long, doubling (at most an hour),
    # for a day. Loopback lets the webhook reach http:// on this machine (the playground's
    # platform pane, the tests); a real deployment leaves it off: https only, and never a
    # private, loopback, link-local or reserved address.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_first_retry_seconds: float = Field(default=30.0, gt=0, le=3600)
    webhook_allow_loopback: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Prometheus' /metrics on an address of its own (`bot.metrics`); no port: not served.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _optional_port(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("facebook_scopes", "instagram_scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: object) -> object:
        if isinstance(value, str):
            scopes = tuple(s.strip() for s in value.split(",") if s.strip())
            if not scopes:
                raise ValueError("must name at least one permission")
            return scopes
        return value

    @field_validator("instagram_scopes")
    @classmethod
    def _instagram_basic(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Instagram's window refuses a login without it ("Invalid Scopes").
        if INSTAGRAM_BASIC_SCOPE not in value:
            raise ValueError(f"must include {INSTAGRAM_BASIC_SCOPE}")
        return tuple(dict.fromkeys(value))

    @field_validator("renewal_lead_days", mode="before")
    @classmethod
    def _split_leads(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                leads = {int(part) for part in value.replace(" ", "").split(",") if part}
            except ValueError:
                raise ValueError("must be comma-separated whole numbers of days") from None
            if not leads or not all(1 <= lead <= 60 for lead in leads):
                raise ValueError("must name 1 to 60 days, at least once")
            return tuple(sorted(leads, reverse=True))
        return value

    @field_validator("admin_telegram_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
            except ValueError:
                raise ValueError("must be comma-separated numeric Telegram user ids") from None
        return value

    @field_validator("facebook_api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not value.startswith("v") or not value[1:].replace(".", "").isdigit():
            raise ValueError("must look like v25.0")
        return value

    @field_validator(
        "public_url",
        "facebook_graph_url",
        "facebook_dialog_url",
        "telegram_base_url",
        "instagram_authorize_url",
        "instagram_token_url",
        "instagram_graph_url",
    )
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if not value.endswith("/bot") else value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
            return value
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https URL (Telegram delivers only to HTTPS)")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        secret = value.get_secret_value() if value else ""
        if not secret:
            if info.data.get("telegram_webhook_url"):
                raise ValueError("is required when TELEGRAM_WEBHOOK_URL is set")
            return None
        if not _WEBHOOK_SECRET.fullmatch(secret):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # People paste libpq URLs; the async engine needs the driver named.
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be sqlite+aiosqlite:///path or postgresql+asyncpg://...")
        return value

    @field_validator("token_encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        from cryptography.fernet import Fernet

        for key in (value.get_secret_value() if value else "").split(","):
            if key.strip():
                try:
                    Fernet(key.strip())
                except ValueError:
                    raise ValueError(
                        "must be Fernet keys (32 url-safe base64-encoded bytes)"
                    ) from None
        return value

    @property
    def telegram_base_file_url(self) -> str:
        """Where files (a manager's CSV) are downloaded: Telegram serves them beside the Bot API
        at /file/bot<token>/<path>."""
        base = self.telegram_base_url
        return (base[: -len("/bot")] if base.endswith("/bot") else base.rstrip("/")) + "/file/bot"

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/oauth/callback"

    def configured_credentials(self) -> list[str]:
        """The names of the real credentials that are set. None at all: `python -m bot` starts
        the playground instead of the bot."""
        names = []
        if self.telegram_bot_token and self.telegram_bot_token.get_secret_value():
            names.append("TELEGRAM_BOT_TOKEN")
        if self.facebook_app_id:
            names.append("FACEBOOK_APP_ID")
        if self.facebook_app_secret and self.facebook_app_secret.get_secret_value():
            names.append("FACEBOOK_APP_SECRET")
        if self.instagram_app_id:
            names.append("INSTAGRAM_APP_ID")
        if self.instagram_app_secret and self.instagram_app_secret.get_secret_value():
            names.append("INSTAGRAM_APP_SECRET")
        return names

    def require_real_credentials(self) -> None:
        """The real bot cannot start without these; say which one is missing."""
        token = self.telegram_bot_token.get_secret_value() if self.telegram_bot_token else ""
        if not token:
            raise ConfigError("TELEGRAM_BOT_TOKEN is not set (get one from @BotFather)")
        if ":" not in token:
            raise ConfigError("TELEGRAM_BOT_TOKEN is malformed (expected <bot id>:<secret>)")
        if not self.facebook_app_id or not self.facebook_app_id.isdigit():
            raise ConfigError("FACEBOOK_APP_ID is not set or not numeric (Meta app dashboard)")
        if not self.facebook_app_secret or not self.facebook_app_secret.get_secret_value():
            raise ConfigError("FACEBOOK_APP_SECRET is not set (Meta app dashboard → App settings)")
        self._require_instagram_pair()
        if not self.keeps_tokens and not self.verify_only:
            raise ConfigError(
                "TOKEN_ENCRYPTION_KEYS is not set: without it no connection can be kept alive "
                "(or set VERIFY_ONLY=true to only verify logins and keep no tokens)"
            )

    def _require_instagram_pair(self) -> None:
        """Instagram Login is optional, but half of it is a mistake worth a clear line."""
        app_id = self.instagram_app_id or ""
        secret = self.instagram_app_secret.get_secret_value() if self.instagram_app_secret else ""
        if not app_id and not secret:
            return
        if not app_id.isdigit():
            raise ConfigError(
                "INSTAGRAM_APP_ID is not set or not numeric (the Instagram app ID under "
                "Instagram → API setup with Instagram login in the second Meta app)"
            )
        if not secret:
            raise ConfigError(
                "INSTAGRAM_APP_SECRET is not set (the Instagram app secret beside "
                "INSTAGRAM_APP_ID in the second Meta app)"
            )

    @property
    def instagram_login_configured(self) -> bool:
        """Instagram Login (the second Meta app) can be offered: its app id and secret are set."""
        secret = self.instagram_app_secret.get_secret_value() if self.instagram_app_secret else ""
        return bool(self.instagram_app_id and self.instagram_app_id.isdigit() and secret)

    @property
    def instagram_redirect_uri(self) -> str:
        """Instagram Login's own callback route (the second app's "OAuth redirect URIs")."""
        return f"{self.public_url}/oauth/instagram"

    @property
    def keeps_tokens(self) -> bool:
        """Access tokens are stored (encrypted): there is a key, and verify-only is not chosen."""
        keys = self.token_encryption_keys.get_secret_value() if self.token_encryption_keys else ""
        return bool(keys.strip(" ,")) and not self.verify_only

    def ensure_sqlite_folder(self) -> None:
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            path = self.database_url[len(prefix) :]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        # Never echo the value: it may be a secret.
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None
