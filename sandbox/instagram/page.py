"""The sandbox consent page at the authorize URL: a plain page in the spirit of Instagram's
authorization window, clearly marked as a sandbox, where the person picks the account (a sample
one or any username), its account type and follower count, the permissions to grant, and Allow or
Cancel. Rendered on the server, works without script; every value shown is escaped. English only,
like the rest of the playground's chrome."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from html import escape
from typing import Any

from .people import BASIC_SCOPE, SAMPLE_PEOPLE, AccountType, IgConsent, IgPerson

USERNAME_RE = re.compile(r"[A-Za-z0-9._]{1,30}")  # Instagram's usernames
FOLLOWERS_MAX = 999_999_999

# What Instagram's window says for each permission.
_PERMISSION_WORDS = {
    "instagram_business_basic": "Access profile and media (required)",
    "instagram_business_manage_insights": "Access insights for your profile and media",
    "instagram_business_manage_comments": "Access and manage comments",
    "instagram_business_content_publish": "Publish content",
    "instagram_business_manage_messages": "Access and manage messages",
}
_TYPE_LABELS = {
    "": "as the account is",
    AccountType.BUSINESS.value: "Business",
    AccountType.MEDIA_CREATOR.value: "Creator",
    AccountType.PERSONAL.value: "Personal (not professional)",
}
_RECIPES = (
    ("connected", "the invited account, Business or Creator, every permission, Allow"),
    ("cancelled", "press Cancel"),
    ("permissions not granted", "untick a permission"),
    ("not a professional account", "account type: Personal"),
    ("another account", "pick or type a different username than the invited one"),
    ("login error", "trouble: the window fails"),
)
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#262626}
.ribbon{background:#ffd54f;padding:.45em 1em;text-align:center;font-size:13px}
main{max-width:560px;margin:1.5em auto;padding:0 1em}
.card{background:#fff;border:1px solid #dbdbdb;border-radius:8px;padding:1.2em 1.5em}
h1{font-size:19px;margin:.2em 0 .6em}h2{font-size:15px;margin:1.1em 0 .4em}
.brand{font-weight:600;font-size:17px;margin-bottom:.8em}
.brand .tag{font-size:11px;background:#262626;color:#fff;border-radius:4px;padding:1px 6px}
label{display:block;margin:.25em 0}li.other label{display:inline}.note{color:#737373;font-size:13px}
.error{background:#fdecea;border:1px solid #f5c2c0;padding:.5em .8em;border-radius:6px}
ul{list-style:none;padding:0;margin:0}
.buttons{display:flex;flex-direction:row-reverse;gap:.6em;margin-top:1.2em}
button{font:inherit;padding:.5em 1.2em;border-radius:8px;border:1px solid #dbdbdb;cursor:pointer}
button.primary{background:#0095f6;border-color:#0095f6;color:#fff;font-weight:600}
"""


def _radio(name: str, value: str, checked: bool, label_html: str) -> str:
    mark = " checked" if checked else ""
    return (
        f'<label><input type="radio" name="{escape(name)}" value="{escape(value)}"{mark}> '
        f"{label_html}</label>"
    )


def _account_choices(current: IgPerson | None, known: list[IgPerson]) -> str:
    """The radio list of accounts: the samples, the others seen, and a free username."""
    people = list(SAMPLE_PEOPLE)
    people += [p for p in known if all(p.username != s.username for s in people)]
    selected = current.username if current is not None else people[0].username
    listed = any(p.username == selected for p in people)
    items = "".join(
        "<li>"
        + _radio(
            "account",
            p.username,
            p.username == selected,
            f"<b>@{escape(p.username)}</b> · {escape(_TYPE_LABELS[p.account_type.value])} · "
            f"{p.followers_count:,} followers",
        )
        + "</li>"
        for p in people
    )
    other = _radio("account", "other", not listed, "Another account: @")
    free = "" if listed else selected
    return items + (
        f'<li class="other">{other}<input name="other_username" value="{escape(free)}" '
        'maxlength="30" '
        'aria-label="Another account\'s username" '
        # Typing a name picks "Another account" (without script, tick it by hand).
        "oninput=\"this.form.account.value='other'\"></li>"
    )


def consent_page(
    *,
    app_name: str,
    query: Mapping[str, str],
    requested: list[str],
    current: IgPerson | None,
    known: list[IgPerson],
    error: str = "",
) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(str(v))}">'
        for k, v in query.items()
    )
    accounts = _account_choices(current, known)
    permissions = "".join(
        '<li><label><input type="checkbox" '
        + (
            "checked disabled"
            if scope == BASIC_SCOPE
            else f'name="scope_{escape(scope)}" value="on" checked'
        )
        + f"> <code>{escape(scope)}</code> {escape(_PERMISSION_WORDS.get(scope, ''))}</label></li>"
        for scope in requested
    )
    # The account's own type is chosen already (a personal account stays personal on Allow).
    own = current.account_type.value if current is not None else None
    types = "".join(
        f'<option value="{escape(value)}"{" selected" if value == own else ""}>'
        f"{escape(label)}</option>"
        for value, label in _TYPE_LABELS.items()
    )
    recipes = "".join(f"<li><b>{escape(o)}</b>: {escape(how)}</li>" for o, how in _RECIPES)
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    # Allow comes first in the form so that Enter in a field allows; the stylesheet shows it
    # last, where Instagram has it.
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>SANDBOX · Log in with Instagram</title><style>{_STYLE}</style></head>
<body>
<div class="ribbon" role="note"><b>SANDBOX</b> · not Instagram · a stand-in for Instagram's
authorization window · nothing leaves this computer</div>
<main>
<div class="brand">Log in with Instagram <span class="tag">sandbox</span></div>
<form method="post" class="card">
  <h1>{escape(app_name)} would like to access your Instagram account</h1>
  {problem}{hidden}
  <section><h2>Account</h2><ul>{accounts}</ul>
  <label>Account type <select name="account_type">{types}</select></label>
  <label>Followers <input name="followers" inputmode="numeric" size="16"
    placeholder="as the account is"></label></section>
  <section><h2>Permissions</h2><ul>{permissions}</ul></section>
  <section><h2>Simulate trouble at Instagram</h2>
  {_radio("trouble", "none", True, "none")}
  {_radio("trouble", "server_error", False, "the window fails (server_error)")}</section>
  <details><summary>How to get each result</summary><ul>{recipes}</ul></details>
  <div class="buttons">
    <button type="submit" name="action" value="allow" class="primary">Allow</button>
    <button type="submit" name="action" value="cancel">Cancel</button>
  </div>
</form>
</main></body></html>"""


def person_from_form(
    form: Mapping[str, Any], requested: list[str], known: list[IgPerson]
) -> tuple[IgPerson, IgConsent] | str:
    """The person and consent the page's form describes, or what is wrong with it (shown on the
    page again). An account seen before keeps its ids and figures."""
    choice = str(form.get("account", "")).strip()
    if choice == "other":
        username = str(form.get("other_username", "")).strip().removeprefix("@")
    else:
        username = choice
    if not USERNAME_RE.fullmatch(username):
        return "Enter an Instagram username: up to 30 letters, digits, periods and underscores."
    base = next((p for p in known if p.username == username), None)
    if base is None:
        base = next((p for p in SAMPLE_PEOPLE if p.username == username), IgPerson(username))
    person = replace(base)
    account_type = str(form.get("account_type", ""))
    if account_type:
        if account_type not in {t.value for t in AccountType}:
            return "Choose an account type from the list."
        person.account_type = AccountType(account_type)
    followers = str(form.get("followers", "")).strip().replace(",", "")
    if followers:
        if not followers.isdigit() or int(followers) > FOLLOWERS_MAX:
            return "Followers: enter a whole number (or leave it empty)."
        person.followers_count = int(followers)
    action = form.get("action")
    if action not in ("allow", "cancel"):
        return "Press Allow or Cancel."
    declined = {s for s in requested if s != BASIC_SCOPE and form.get(f"scope_{s}") != "on"}
    error = "server_error" if form.get("trouble") == "server_error" else None
    return person, IgConsent(declined=declined, cancel=action == "cancel", error=error)
