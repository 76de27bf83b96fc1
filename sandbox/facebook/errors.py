"""Graph's error envelope and the dialog's error page, with the codes and wording Meta uses."""

from __future__ import annotations


class GraphError(Exception):
    def __init__(
        self,
        code: int,
        message: str,
        *,
        error_type: str = "OAuthException",
        subcode: int | None = None,
        http_status: int = 400,
        is_transient: bool = False,
        user_title: str | None = None,
        user_msg: str | None = None,
        error_data: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_type = error_type
        self.subcode = subcode
        self.http_status = http_status
        # Graph marks throttling and outages "is_transient": true (codes 1 and 2 always).
        self.is_transient = is_transient or code in (1, 2)
        # Shown to people by Meta's own apps; Graph adds them to some errors (e.g. 2108006).
        self.user_title = user_title
        self.user_msg = user_msg
        self.error_data = error_data


class DialogError(Exception):
    """The dialog shows an error page instead of redirecting."""


def nonexisting_field(name: str, node_type: str) -> GraphError:
    return GraphError(
        100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})"
    )


def unsupported_get(node_id: str) -> GraphError:
    return GraphError(
        100,
        f"Unsupported get request. Object with ID '{node_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the Graph "
        "API documentation at https://developers.facebook.com/docs/graph-api",
        error_type="GraphMethodException",
        subcode=33,
    )


# Subcodes of error 190 (invalid access token) that Facebook's lifecycle controls produce.
APP_REMOVED = 458
PASSWORD_CHANGED = 460
EXPIRED = 463
LOGGED_OUT = 467
DATA_ACCESS_EXPIRED = 493  # practitioners: after 90 days without the person using the app
INVALIDATING_SUBCODES = (APP_REMOVED, PASSWORD_CHANGED, EXPIRED, LOGGED_OUT)


def invalid_token(subcode: int, app_id: str) -> GraphError:
    """Graph's answer to a token that Facebook invalidated, with Meta's wording (463, expired,
    has its own message with the dates: see the stand-in's token check)."""
    messages = {
        APP_REMOVED: "Error validating access token: The user has not authorized application "
        f"{app_id}.",
        PASSWORD_CHANGED: "Error validating access token: The session has been invalidated "
        "because the user changed their password or Facebook has changed the session for "
        "security reasons.",
        LOGGED_OUT: "Error validating access token: The session is invalid because the user "
        "logged out.",
        DATA_ACCESS_EXPIRED: "The access token is invalid since the user hasn't engaged the app "
        "in longer than 90 days.",
    }
    if subcode not in messages:
        raise ValueError(f"no such invalidation: {subcode}")
    return GraphError(190, messages[subcode], subcode=subcode)


def page_role_lost() -> GraphError:
    """A Page token after its person lost their role on the Page (practitioners: no subcode)."""
    return GraphError(
        190,
        "The user must be an administrator, editor, or moderator of the page in order to "
        "impersonate it.",
    )


def service_unavailable() -> GraphError:
    """An outage: every call answers 500 with the transient code 2."""
    return GraphError(2, "(#2) Service temporarily unavailable", http_status=500)
