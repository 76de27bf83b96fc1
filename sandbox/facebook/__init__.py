"""A stand-in for Facebook Login's dialog (www.facebook.com) and the Graph API (graph.facebook.com).

One aiohttp app on loopback serves both; tests point FACEBOOK_DIALOG_URL and FACEBOOK_GRAPH_URL at
``base_url``. It plays the person in the browser (``set_person`` with a ``Consent``: untick
permissions, deselect Pages, cancel) and answers the server-side calls the bot makes afterwards:
code exchange, long-lived token exchange, ``debug_token``, ``/me/permissions``, ``/me/accounts``
(paginated), the Instagram account node, and ``DELETE /me/permissions``.

Errors use Graph's envelope ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`` with the codes and wording Meta uses (see /work/shared/docs/meta-platform.md).

  people.py    FbUser, FbPage, IgAccount, Consent
  standin.py   GraphStandin: dialog, Graph API routes, tokens, rendering
  state.py     grants, codes, tokens and faults as the stand-in records them
  fields.py    the ``fields`` syntax and paging cursors
  errors.py    Graph's error answers
"""

from __future__ import annotations

from .people import Consent, FbPage, FbUser, IgAccount
from .standin import GraphStandin

__all__ = [
    "Consent",
    "FbPage",
    "FbUser",
    "GraphStandin",
    "IgAccount",
]
