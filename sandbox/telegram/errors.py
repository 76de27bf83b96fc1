"""The Bot API's refusals (``ok: false`` with ``error_code`` and ``description``)."""

from __future__ import annotations


class ApiError(Exception):
    """An answer with ``ok: false``."""

    def __init__(
        self,
        status: int,
        description: str,
        retry_after: int | None = None,
        *,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def webhook_conflict() -> ApiError:
    return ApiError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first",
    )
