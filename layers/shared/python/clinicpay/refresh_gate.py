"""At most one re-read of a webhook verification key per clinic per minute, whatever a forger sends.

A webhook whose signature does not verify may mean the provider rotated its key (monobank's public
key) or the clinic rotated its endpoint secret (Fintoc, Stripe), so the key is read afresh before
the webhook is refused. Done on every bad signature, that lets anyone with the URL make us call out
at will: monobank's `/pubkey` is rate-limited (429 `TMR`), and a flood of forgeries could then block
the one re-fetch a real rotation needs; Secrets Manager bills every read.

So a re-read is allowed once per key per `WINDOW_SECONDS`: first in this container (memory, free),
then across containers through a conditional write in DynamoDB (`THROTTLE#{key}`), so a flood that
scales Lambda out still makes one call a minute. The trade-off: after a genuine rotation that comes
less than a minute after another re-read (a forgery, say), webhooks signed with the new key are
refused (401) until the minute is over; providers retry a refused webhook (Fintoc and Stripe for
hours, monobank up to 3 times), and the first retry after the minute verifies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from clinicpay.domain.errors import ClinicpayError
from clinicpay.observability import logger

WINDOW_SECONDS = 60.0

# (key, window seconds) -> whether this container may re-read now (no other container did lately).
SharedClaim = Callable[[str, float], bool]


class RefreshGate:
    def __init__(self, window_seconds: float = WINDOW_SECONDS, *, shared: SharedClaim | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.window_seconds = window_seconds
        self._shared = shared
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._last.clear()

    def mark(self, key: str) -> None:
        """A read just happened anyway (the first one a container needs): the window starts now."""
        with self._lock:
            self._last[key] = self._clock()

    def allow(self, key: str) -> bool:
        """Whether a re-read may happen now; saying yes starts the window (concurrent callers get no)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.window_seconds:
                return False
            self._last[key] = now
        if self._shared is None:
            return True
        try:
            allowed = self._shared(key, self.window_seconds)
        except ClinicpayError as error:
            # Storage trouble: this container's own window still holds it to one call a minute.
            logger.warning("shared refresh gate unavailable", extra={"error_code": error.code})
            return True
        if not allowed:
            logger.info("key re-read skipped: another container re-read it within the window")
        return allowed


def _claim_in_dynamodb(key: str, window_seconds: float) -> bool:
    from clinicpay.repositories.throttle import claim_window
    from clinicpay.settings import get_settings

    return claim_window(get_settings().app_table, key, window_seconds)


# One per container, shared by monobank's public-key cache and the Secrets Manager re-read.
GATE = RefreshGate(shared=_claim_in_dynamodb)
