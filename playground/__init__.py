"""The playground: the real bot, unchanged, against local stand-ins of Telegram and Facebook, with
a web page to use it from a browser. `python -m bot` starts it when nothing is configured, and
only then imports it: like the stand-ins, it is a top-level package of the source tree, never
imported by the bot and not in the wheel (tests/test_layout.py).

The stand-ins are `sandbox`; the bot is reached only through the settings a production
deployment uses (TELEGRAM_BASE_URL, FACEBOOK_GRAPH_URL, FACEBOOK_DIALOG_URL, ...). Everything the
playground adds (the chat page, its API, the sandbox login dialog) is served by its own aiohttp
app on its own port, which only the playground starts: a real deployment has none of it.

  config.py          PLAYGROUND_* settings; when the playground may start at all
  composition.py     Playground: stand-ins + ConnectBot + the web app; run_playground
  people.py          the brand manager and the influencers
  chats.py           the chats as the page shows them, and the watcher behind live updates
  web.py             the aiohttp app: page, API, live stream, sandbox login dialog
  sandbox_login.py   the dialog's choices → FbUser + Consent (+ a simulated Facebook fault)
  sandbox_page.py    the dialog's HTML
  facebook_side.py   the "Facebook's side" panel: what Facebook does to a connection after the
                     login (on the Graph stand-in), and "Check now" (a health round at once)
  platform_side.py   the "platform" pane: the brand's webhook receiver (signatures checked
                     as docs/webhooks.md says) and its read API client
  static/            the page: plain HTML, CSS and JavaScript, no build step
"""
