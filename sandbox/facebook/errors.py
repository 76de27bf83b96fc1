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
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_type = error_type
        self.subcode = subcode
        self.http_status = http_status


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
