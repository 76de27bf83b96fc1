"""The sandbox login dialog's HTML: a consent page in the style of Facebook's, clearly labelled as
a sandbox, where the person chooses what happens. Rendered on the server, works without script;
every value from the request or the person is escaped."""

from __future__ import annotations

from html import escape

from playground.sandbox_login import (
    PAGE_SLOTS,
    TROUBLE_LABELS,
    Action,
    InstagramLink,
    PageSetup,
    Role,
    Trouble,
)

# What Facebook's dialog says for each permission (the playground's chrome is English only).
_PERMISSION_WORDS = {
    "instagram_basic": "Access profile and posts from the Instagram account connected to your Page",
    "instagram_manage_insights": "Access insights for the Instagram account connected to your Page",
    "pages_show_list": "Show a list of the Pages you manage",
    "pages_read_engagement": "Read content posted on the Page",
    "business_management": "Manage your business (Pages owned by a business portfolio)",
}

# How to get each verdict of bot.verdict.Outcome from this page.
_RECIPES = (
    ("connected", "keep everything as it is and continue"),
    ("cancelled", "press Cancel"),
    ("app not live", "press “App in development mode”"),
    ("login error", "trouble: the dialog fails"),
    ("login expired", "trouble: the code has expired"),
    ("Facebook unavailable", "trouble: Graph API down or rate-limited"),
    ("token invalid", "trouble: session invalidated"),
    ("permissions declined", "untick a permission"),
    ("no Page", "untick every Page"),
    (
        "no Page (business)",
        "Page owned by a business portfolio while business_management is not granted "
        "(only when FACEBOOK_SCOPES leaves business_management out; otherwise that is "
        "“permissions declined”)",
    ),
    ("Page without role", "role: no usable role"),
    ("Page unpublished", "untick “Published”"),
    ("account not selected", "untick “Share this Instagram account”"),
    ("half-linked", "Instagram: half-linked"),
    ("other account", "Instagram: another account, or share only the second Page"),
    ("not linked", "Instagram: none on every shared Page"),
)

_LINK_LABELS = {
    InstagramLink.INVITED: "linked to the invited account @{handle}",
    InstagramLink.OTHER: "linked to another account",
    InstagramLink.HALF: "half-linked to @{handle} (Accounts Center only)",
    InstagramLink.NONE: "no Instagram account",
}


def _checkbox(name: str, checked: bool, label_html: str, value: str = "on") -> str:
    """``label_html`` is inserted as it is: escape what goes into it."""
    mark = " checked" if checked else ""
    return (
        f'<label class="check"><input type="checkbox" name="{escape(name)}" '
        f'value="{escape(value)}"{mark}> {label_html}</label>'
    )


def _select(name: str, current: str, options: list[tuple[str, str]]) -> str:
    rendered = "".join(
        f'<option value="{escape(value)}"{" selected" if value == current else ""}>'
        f"{escape(label)}</option>"
        for value, label in options
    )
    return f'<select name="{escape(name)}">{rendered}</select>'


def _page_card(slot: int, page: PageSetup, handle: str) -> str:
    p = f"page-{slot}-"
    shown_handle = handle or "…"
    links = [
        (link.value, label.format(handle=shown_handle)) for link, label in _LINK_LABELS.items()
    ]
    roles = [(Role.FULL.value, "Full control"), (Role.NONE.value, "No usable role")]
    return f"""
<fieldset class="page">
  <legend>{_checkbox(p + "shared", page.shared, "Share this Page")}</legend>
  <label class="field">Page name
    <input name="{p}name" value="{escape(page.name)}" maxlength="80"></label>
  <div class="row">
    {_checkbox(p + "published", page.published, "Published")}
    <label class="field inline">Your role {_select(p + "role", page.role.value, roles)}</label>
    {_checkbox(p + "business", page.business_owned, "Owned by a business portfolio")}
  </div>
  <label class="field">Instagram
    {_select(p + "instagram", page.instagram.value, links)}</label>
  <div class="row business-account">
    <label class="field inline other-account">Other account @
      <input name="{p}other" value="{escape(page.other_username)}" maxlength="30"></label>
    <label class="field inline">Followers
      <input name="{p}followers" value="{page.followers}" inputmode="numeric" size="9"></label>
    {_checkbox(p + "ig-shared", page.instagram_shared, "Share this Instagram account")}
    {_checkbox(p + "new", page.new_account, "New account (no figures yet)")}
  </div>
</fieldset>"""


def consent_page(
    *,
    app_name: str,
    person_name: str,
    person_id: int | None,
    handle: str,
    requested: list[str],
    rerequest: bool,
    pages: list[PageSetup],
    reauthorize: bool = False,
) -> str:
    assert len(pages) == PAGE_SLOTS
    permissions = "".join(
        "<li>"
        + _checkbox(
            "scope", True, f"<code>{escape(s)}</code> {escape(_PERMISSION_WORDS.get(s, ''))}", s
        )
        + "</li>"
        for s in requested
    )
    again = (
        '<p class="note">Facebook asks again for permissions declined before '
        "(<code>auth_type=rerequest</code>).</p>"
        if rerequest
        else '<p class="note">Without <code>auth_type=rerequest</code> Facebook does not ask again '
        "for a permission this person declined before: it stays declined.</p>"
    )
    if reauthorize:
        again = (
            '<p class="note">Renewing: Facebook asks this person to confirm the app\'s access '
            "again (<code>auth_type=reauthorize</code>), which it ends 90 days after they last "
            "used the app. Keep the same Page and Instagram account to keep the connection.</p>"
        )
    if handle:
        invited = (
            f"<p>Invited Instagram account: <b>@{escape(handle)}</b></p>"
            f'<input type="hidden" name="handle" value="{escape(handle)}">'
        )
    else:
        invited = (
            '<label class="field">Invited Instagram account (not found for this login) @'
            '<input name="handle" maxlength="30" required></label>'
        )
    troubles = "".join(
        f'<label class="radio"><input type="radio" name="trouble" value="{t.value}"'
        f"{' checked' if t is Trouble.NONE else ''}> {escape(label)}</label>"
        for t, label in TROUBLE_LABELS.items()
    )
    recipes = "".join(f"<li><b>{escape(o)}</b>: {escape(how)}</li>" for o, how in _RECIPES)
    cards = "".join(_page_card(slot, page, handle) for slot, page in enumerate(pages))
    person_field = (
        f'<input type="hidden" name="person" value="{person_id}">' if person_id is not None else ""
    )
    # The primary button comes first in the form so that Enter in a field continues; the
    # stylesheet shows it last, where Facebook has it.
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>SANDBOX · Log in with Facebook</title>
<link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="/static/sandbox.css"></head>
<body>
<div class="ribbon" role="note"><b>SANDBOX</b> · not Facebook · a stand-in for Facebook's login
dialog in the Connect Bot playground · nothing leaves this computer</div>
<main>
<header class="brand"><span class="logo">f</span> <span>Log in with Facebook</span>
<span class="tag">sandbox</span></header>
<form method="post" class="card">
  <h1>{escape(app_name)} is requesting access</h1>
  <p class="who">Logged in as <b>{escape(person_name)}</b> (a made-up Facebook account)</p>
  {person_field}
  {invited}
  <section><h2>Permissions</h2><ul class="permissions">{permissions}</ul>{again}</section>
  <section><h2>Pages</h2>
  <p class="note">Tick the Pages to share, and set up each Page and its Instagram account.</p>
  {cards}</section>
  <section><h2>Simulate trouble at Facebook</h2>{troubles}</section>
  <details><summary>How to get each result</summary><ul class="recipes">{recipes}</ul></details>
  <div class="buttons">
    <button type="submit" name="action" value="{Action.CONTINUE.value}" class="primary">
      Continue as {escape(person_name)}</button>
    <button type="submit" name="action" value="{Action.DEVELOPMENT_MODE.value}" class="secondary"
      title="The app is in development mode and this person has no role on it">
      App in development mode</button>
    <button type="submit" name="action" value="{Action.CANCEL.value}" class="secondary">
      Cancel</button>
  </div>
</form>
</main></body></html>"""


def dialog_error_page(message: str) -> str:
    """What Facebook shows instead of redirecting (wrong app id, redirect URI not allowed...)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SANDBOX · Error</title>
<link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="/static/sandbox.css"></head>
<body><div class="ribbon" role="note"><b>SANDBOX</b> · not Facebook</div>
<main><div class="card"><h1>Sorry, something went wrong.</h1><p>{escape(message)}</p></div></main>
</body></html>"""
