"""Benchmarks of Connect Bot against the Telegram and Facebook stand-ins (issue 6).

Run them all with ``make bench`` (``python -m bench``); see docs/benchmarks.md. Nothing here is
collected by pytest: figures are printed, never asserted.
"""
