"""The playground's own settings (PLAYGROUND_*), and the rule for when it may start at all."""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import ConfigError, Settings


class PlaygroundSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PLAYGROUND_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)


def load_playground_settings(**overrides: object) -> PlaygroundSettings:
    """Like `bot.config.load_settings`: a bad value is one line naming the setting."""
    try:
        return PlaygroundSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = f"PLAYGROUND_{first['loc'][0]}".upper() if first["loc"] else "PLAYGROUND"
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None


def wants_playground(settings: Settings) -> bool:
    """Nothing configured: no bot token and no Meta app. Anything half-configured is somebody
    setting up a real deployment, who should hear what is missing instead."""
    return not settings.configured_credentials()


def refuse_real_credentials(settings: Settings) -> None:
    """The playground hands the bot fake credentials for its stand-ins; it never runs next to,
    or instead of, real ones."""
    names = settings.configured_credentials()
    if names:
        raise ConfigError(
            f"the playground does not start with real credentials configured ({', '.join(names)})"
        )
