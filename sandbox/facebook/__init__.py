"""A stand-in for Facebook Login's dialog (www.facebook.com) and the Graph API (graph.facebook.com).

One aiohttp app on loopback serves both; tests point FACEBOOK_DIALOG_URL and FACEBOOK_GRAPH_URL at
``base_url``. It plays the person in the browser (``set_person`` with a ``Consent``: untick
permissions, deselect Pages, cancel) and answers the server-side calls the bot makes afterwards:
code exchange, long-lived token exchange, ``debug_token``, ``/me/permissions``, ``/me/accounts``
(paginated), the Instagram account node, and ``DELETE /me/permissions``.

What a brand reads about a connected account comes with Graph's wire format and today's
(v22+) metric names: the profile (``/{ig-user-id}?fields=...``, the picture served as a PNG on
``/cdn/``), ``/{ig-user-id}/insights`` (reach day by day; views, accounts engaged, interactions
as ``total_value``; ``follower_demographics`` by age, gender, country, city),
``/{ig-user-id}/media`` (paged) and ``/{ig-media-id}/insights``, with Graph's errors for gone
metrics, windows over 30 days, missing ``instagram_manage_insights``, under 100 followers and
posts from before the account became professional (instagram.py says where each comes from).
Every account has stable seeded figures out of the box; ``set_instagram_profile``,
``set_insights``, ``set_demographics``, ``set_posts`` and ``set_new_account`` change them.

After the login, tests and the playground play Facebook's side of a connection's life through
the stand-in's methods: ``fast_forward`` its clock, ``expire_token``, ``invalidate_tokens`` with
error 190's subcodes (``remove_app``, ``change_password``, ``log_out``), ``remove_permission``,
``remove_page_role``, ``unlink_instagram``, ``unpublish_page``, ``change_username``,
``set_data_access_expires_at``; ``set_rate_limits`` (per hour: app, person, Page, Instagram
account) and ``set_outage``.

Errors use Graph's envelope ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`` with the codes and wording Meta uses (see /work/shared/docs/meta-platform.md).

  people.py    FbUser, FbPage, IgAccount, Consent
  standin.py   GraphStandin: dialog, Graph API routes, tokens, rendering
  state.py     grants, codes, tokens and faults as the stand-in records them
  limits.py    rate limits per hour and the usage headers
  fields.py    the ``fields`` syntax and paging cursors
  instagram.py insight series, demographics, posts, and Graph's answers about them
  errors.py    Graph's error answers
"""

from __future__ import annotations

from .instagram import Demographics, Post
from .people import Consent, FbPage, FbUser, IgAccount
from .standin import GraphStandin

__all__ = [
    "Consent",
    "Demographics",
    "FbPage",
    "FbUser",
    "GraphStandin",
    "IgAccount",
    "Post",
]
