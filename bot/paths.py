"""Which ways in are open for an invitation (issue 13): the Facebook path (a Page linked to the
Instagram account) and the Instagram path (Instagram Login, the second Meta app).

Instagram Login is open only where the second app is configured; a brand's choice
(`Brand.login_paths`, set by an admin with /paths) narrows it further. A brand never ends up with
no way in: "instagram only" on a platform without the second app falls back to Facebook.
No I/O here.
"""

from __future__ import annotations

from typing import Protocol

from bot.models import BrandPaths, LoginPath, Step

_BOTH = frozenset({LoginPath.FACEBOOK, LoginPath.INSTAGRAM})
_FACEBOOK = frozenset({LoginPath.FACEBOOK})
_INSTAGRAM = frozenset({LoginPath.INSTAGRAM})


class _Configured(Protocol):
    @property
    def instagram_login_configured(self) -> bool: ...


def open_paths(settings: _Configured, brand_login_paths: str | None) -> frozenset[LoginPath]:
    """The ways in open for an invitation of a brand with this `login_paths` (None: an
    invitation without a brand, or a value this release does not know: both)."""
    if not settings.instagram_login_configured:
        return _FACEBOOK
    if brand_login_paths == BrandPaths.FACEBOOK:
        return _FACEBOOK
    if brand_login_paths == BrandPaths.INSTAGRAM:
        return _INSTAGRAM
    return _BOTH


def first_step(paths: frozenset[LoginPath]) -> tuple[Step, LoginPath | None]:
    """Where the influencer starts, and the way in already decided: the question where both
    are open (nothing decided yet), otherwise the open path's first check. The Facebook path
    alone leaves the invitation's path unset, as before there was a second one."""
    if paths == _BOTH:
        return Step.PATH, None
    if paths == _INSTAGRAM:
        return Step.IG_PROFESSIONAL, LoginPath.INSTAGRAM
    return Step.PAGE_PUBLIC, None


def first_steps(settings: _Configured) -> dict[str, tuple[Step, LoginPath | None]]:
    """`first_step` for every value of `Brand.login_paths` (for a statement that decides it in
    the database, where the brand is read)."""
    return {v.value: first_step(open_paths(settings, v.value)) for v in BrandPaths}


def brand_values_opening(settings: _Configured, path: LoginPath) -> frozenset[str]:
    """The values of `Brand.login_paths` under which `path` is open (for a compare-and-set that
    must not move anyone onto a way in closed meanwhile). An invitation without a brand is
    treated as "both"."""
    return frozenset(v.value for v in BrandPaths if path in open_paths(settings, v.value))


__all__ = ["brand_values_opening", "first_step", "first_steps", "open_paths"]
