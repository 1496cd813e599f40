"""Process-wide settings of the huggingface_hub client, and reading its errors.

`configure_client` runs once per process (every `HuggingFaceStore` calls it): the shared httpx2
client gets a timeout (it has none), and xet is turned off with the client's own setting (why: see
`subnet.hub.huggingface`). Inside `surfacing_rate_limits()` (the store's own calls, on that thread
only) a 429 surfaces at once instead of inside the client's retry loops, which sleep whatever
`Retry-After` says, up to five times, inside our call; other users of the client in the process
(the parquet data source) keep the client's own 429 handling.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import parse_ratelimit_headers

_CLIENT_LOCK = threading.Lock()
_CLIENT_CONFIGURED: float | None = None


def configure_client(timeout_s: float) -> None:
    """Apply the settings above once per process; later calls (any timeout) change nothing."""
    global _CLIENT_CONFIGURED
    from huggingface_hub.utils import _http

    with _CLIENT_LOCK:
        if _CLIENT_CONFIGURED is not None:
            return
        os.environ["HF_HUB_DISABLE_XET"] = "1"  # for subprocesses, which read it at import
        constants.HF_HUB_DISABLE_XET = True  # what the variable sets; read at call time

        def factory() -> httpx2.Client:
            client = _http.default_client_factory()
            client.timeout = httpx2.Timeout(timeout_s)
            hooks = client.event_hooks
            hooks["response"] = [*hooks.get("response", []), _raise_on_rate_limit]
            client.event_hooks = hooks
            return client

        _http.set_client_factory(factory)
        _CLIENT_CONFIGURED = timeout_s


_SURFACING = threading.local()


@contextmanager
def surfacing_rate_limits() -> Iterator[None]:
    """Within this block, on this thread, a 429 raises at once (the store decides how long to wait)."""
    previous = getattr(_SURFACING, "active", False)
    _SURFACING.active = True
    try:
        yield
    finally:
        _SURFACING.active = previous


def _raise_on_rate_limit(response: httpx2.Response) -> None:
    if response.status_code == 429 and getattr(_SURFACING, "active", False):
        response.read()
        raise HfHubHTTPError(f"429 Too Many Requests for url: {response.url}", response=response)


def retry_after_s(headers) -> float | None:
    """Seconds the server asks us to wait: `RateLimit` (when nothing remains), else `Retry-After`."""
    info = parse_ratelimit_headers(headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    value = next((str(v).strip() for k, v in headers.items() if k.lower() == "retry-after"), "")
    if value.isdigit():
        return float(value)
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None


def is_xet_failure(e: Exception) -> bool:
    """hf_xet's failures: network trouble on its side, never the repo's fault."""
    return isinstance(e, ConnectionError) or (isinstance(e, RuntimeError) and "CAS Client Error" in str(e))


def rate_limited_response(error: BaseException) -> httpx2.Response | None:
    """The 429 response behind `error`, also when the client wrapped it (a HEAD's error -> LocalEntryNotFound)."""
    seen = 0
    while error is not None and seen < 8:
        if status_of(error) == 429:
            return error.response
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)
