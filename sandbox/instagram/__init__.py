"""A stand-in for the Instagram API with Instagram Login: Instagram's authorization window
(www.instagram.com), its token endpoint (api.instagram.com) and its Graph host
(graph.instagram.com), one aiohttp app on loopback. Point all three base URLs at ``base_url``;
paths are the real ones: ``/oauth/authorize``, ``/oauth/access_token``, ``/access_token``,
``/refresh_access_token``, ``[/vXX.X]/me``, ``/{id}/insights``, ``/{id}/media``,
``/{media-id}``, ``/{media-id}/insights``, and the CDN (``/cdn/...``).

Tests script the person in the browser with ``set_person(IgPerson, IgConsent)`` and the authorize
URL answers at once with the redirect (302), as GraphStandin's dialog does. Without a scripted
person, or with ``consent_page = True`` (the playground), it shows a sandbox consent page where
the person picks the account, its type and followers, the permissions, Allow or Cancel; the form
posts back to the same URL, which redirects. ``complete_authorize`` does the same for a page of
one's own. After the login, Instagram's side of a connection's life: ``fast_forward`` the clock,
``expire_token(s)``, ``revoke`` (app removed: 190/458), ``change_password`` (190/460),
``remove_permission``, ``set_outage``, ``set_rate_limits``, ``fail_next``, ``fail_network``;
the figures: ``set_profile``, ``set_insights``, ``set_demographics``, ``set_posts``,
``set_new_account``.

Behaviours mirrored, and where they come from:

- Authorize URL ``client_id``, ``redirect_uri``, ``response_type=code``, ``scope`` (comma or
  space separated; ``instagram_business_basic`` required), ``state`` echoed back; the code
  redirect ``?...&code=<code>#_`` ("we append #_ to the end of the redirect URI, but it is not
  part of the code itself") and the cancel redirect
  ``?error=access_denied&error_reason=user_denied&error_description=The user denied your
  request.`` without ``#_``:
  https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/business-login
  and https://developers.facebook.com/docs/instagram-platform/reference/oauth-authorize. The
  scope names are the ``instagram_business_*`` ones (the ``business_*`` names ended on 27 January
  2025). Errors of the window (wrong app id "Invalid platform app", "Invalid redirect_uri",
  "Invalid Scopes: ...") come as the flat JSON below with HTTP 400, as Instagram shows them.
  ``state`` is optional at Instagram; the stand-in refuses a login without it, so the bot is
  held to sending it (as the Facebook stand-in does).
- Codes: valid 1 hour, single use (business-login page), bound to the app and the
  ``redirect_uri``. The exchange is ``POST /oauth/access_token`` (form: ``client_id``,
  ``client_secret``, ``grant_type=authorization_code``, ``redirect_uri``, ``code``) and answers
  in one of the two shapes Meta documents, chosen with ``exchange_shape``: ``DATA``
  ``{"data": [{"access_token", "user_id": "<string>", "permissions": "a,b"}]}`` (business-login
  page, the default) or ``FLAT`` ``{"access_token", "user_id": <number>, "permissions": [...]}``
  (the endpoint's older reference, whose examples show a numeric id). Its errors are Instagram's
  flat shape ``{"error_type": "OAuthException", "code": <HTTP status>, "error_message"}`` with
  the messages seen in the field: "This authorization code has been used", "This authorization
  code has expired", "Matching code was not found or was already used" (also for a code still
  carrying ``#_``), "Invalid platform app", "Error validating client secret.", the
  ``redirect_uri`` mismatch; 405 for a GET.
- ``user_id`` of the exchange is the app-scoped id (``IgPerson.id``), which ``/me`` answers as
  ``id``; ``/me``'s ``user_id`` is the professional account id (``IgPerson.user_id``, 1784...).
  Practitioners report exactly this mismatch; both ids address the account on the Graph host.
- Long-lived token: ``GET /access_token?grant_type=ig_exchange_token&client_secret&access_token``
  → ``{"access_token", "token_type": "bearer", "expires_in"}`` (60 days; the short-lived token
  lives 1 hour): https://developers.facebook.com/docs/instagram-platform/reference/access_token.
  Refresh: ``GET /refresh_access_token?grant_type=ig_refresh_token&access_token`` for a
  long-lived token "at least 24 hours old but has not expired"; the answer lives 60 days from
  the refresh: https://developers.facebook.com/docs/instagram-platform/reference/refresh_access_token.
  The refusals' wording is not documented: a too-young token, a short-lived one or the wrong
  grant_type answer code 100 (the token itself is fine); an expired token 190/463, as on Graph.
  A refresh issues a new value; the old one keeps working until its own expiry.
- ``/me`` (``/{id}``) with ``fields`` among ``id``, ``user_id``, ``username``, ``name``,
  ``account_type`` (``BUSINESS`` | ``MEDIA_CREATOR``), ``profile_picture_url`` (expiring CDN
  URL), ``followers_count``, ``follows_count``, ``media_count``, ``biography``, ``website``:
  https://developers.facebook.com/docs/instagram-platform/reference/me and the User reference.
  A personal account cannot really complete Business Login (the window makes it switch to a
  professional account first); the stand-in lets a ``PERSONAL`` person finish and answers
  ``account_type: "PERSONAL"`` (and code 10 on insights), a state the bot must refuse as "not a
  professional account", so its check can be tested end to end.
- Insights, demographics and media: ``/me/insights`` and ``/{id}/insights``, ``/me/media``,
  ``/{media-id}``, ``/{media-id}/insights`` answered by sandbox/facebook/instagram.py (it lists
  Meta's pages for each behaviour); they need ``instagram_business_manage_insights`` (else code
  10, "(#10) Application does not have permission for this action").
- Errors on the Graph host use Graph's envelope ``{"error": {"message", "type", "code",
  "error_subcode", "is_transient", "fbtrace_id"}}``: 190 for an unknown token, 190/463 expired,
  190/458 app removed, 190/460 password changed; 10 permissions; 4/17/80002 rate limits with the
  usage headers (sandbox/facebook/limits.py); 2 for an outage (HTTP 500). No ``appsecret_proof``
  is required on this host.

  people.py   IgPerson, IgConsent, AccountType, the scopes, sample people for the page
  state.py    accounts, codes, tokens and their lifetimes; the token endpoint's error shape
  standin.py  InstagramStandin: the window, the token endpoint, the Graph host
  page.py     the sandbox consent page and reading its form
"""

from __future__ import annotations

from sandbox.facebook.instagram import Demographics, Post

from .people import SAMPLE_PEOPLE, SCOPES, AccountType, IgConsent, IgPerson
from .standin import InstagramStandin
from .state import ExchangeShape, IgToken, TokenKind

__all__ = [
    "SAMPLE_PEOPLE",
    "SCOPES",
    "AccountType",
    "Demographics",
    "ExchangeShape",
    "IgConsent",
    "IgPerson",
    "IgToken",
    "InstagramStandin",
    "Post",
    "TokenKind",
]
