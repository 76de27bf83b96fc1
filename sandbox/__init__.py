"""Stand-ins for Telegram's Bot API and Facebook (login dialog + Graph API): real aiohttp servers
that speak the real wire formats. The tests use them; the playground runs the bot against them."""
