"""python-telegram-bot's requests on aiohttp instead of httpx.

PTB's default `HTTPXRequest` spends most of a guided step's CPU time in httpx and httpcore (the
flow benchmark's profile: half of the bot's main thread; docs/benchmarks.md), and the Graph client
already moved to aiohttp for the same reason. This is the same contract, `BaseRequest.do_request`:
the method, the URL, the parameters form-encoded (PTB's JSON-encoded values, as httpx sends them)
or as multipart with the files, and back the status and the body. PTB turns the status into its
errors (`BaseRequest._request_wrapper`); a timeout becomes `TimedOut`, any other failure of the
connection `NetworkError`, as with httpx.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest"]


class AiohttpRequest(BaseRequest):
    """One aiohttp session with up to `connections` kept-alive connections to the Bot API."""

    def __init__(
        self,
        *,
        connections: int = 64,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        media_write_timeout: float | None = 20.0,
        pool_timeout: float | None = 10.0,
    ) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._media_write_timeout = media_write_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=0),
                headers={"User-Agent": self.USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                # Timeouts per request (below); none for the session as a whole.
                timeout=aiohttp.ClientTimeout(total=None),
            )
            # A send that lost its connection before the answer is not sent again by aiohttp:
            # PTB decides (a message could otherwise arrive twice).
            self._session._retry_connection = False

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        body: aiohttp.FormData | dict[str, str] | None = fields or None
        if files:
            form = aiohttp.FormData(quote_fields=False)
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, part in files.items():
                if isinstance(part, tuple):
                    filename, content, *rest = part
                    form.add_field(
                        name,
                        content,
                        filename=filename,
                        content_type=rest[0] if rest else "application/octet-stream",
                    )
                else:
                    form.add_field(name, part)
            body = form
        write = _chosen(write_timeout, self._media_write_timeout if files else self._write_timeout)
        read = _chosen(read_timeout, self._read_timeout)
        timeout = aiohttp.ClientTimeout(
            total=None,
            # Waiting for a free connection of the pool, and connecting.
            connect=_chosen(pool_timeout, self._pool_timeout),
            sock_connect=_chosen(connect_timeout, self._connect_timeout),
            # aiohttp has no separate write timeout: the read timeout covers the time until
            # the answer starts, which includes sending the body.
            sock_read=None if read is None else read + (write or 0.0),
        )
        try:
            async with session.request(method, url, data=body, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _chosen(value: Any, default: float | None) -> float | None:
    """A timeout given for this request, or the default (PTB's DefaultValue means "not given")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if value is None:
        return None
    return default
