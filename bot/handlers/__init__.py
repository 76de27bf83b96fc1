"""Telegram handlers, one module per audience. Each module offers `handlers()`; `bot.app` registers
them in an explicit order."""
