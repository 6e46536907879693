"""Environment, read once per container into a typed record. Use cases never read os.environ.

A frozen dataclass, not a pydantic model: every request of every function reads it, and building a
pydantic validator for it cost each container's first request more than the whole conversion below
(bench/import_time.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import lru_cache

# The field types below, by their annotation (strings: `from __future__ import annotations`).
_CONVERT = {"str": str, "int": int, "float": float}
_KIND = {"str": "text", "int": "an integer", "float": "a number"}


@dataclass(frozen=True)
class Settings:
    app_table: str = "AppointmentsTable"
    keys_table: str = "KeysTable"
    cards_table: str = "CardsTable"
    idempotency_table: str = "IdempotencyTable"
    public_base_url: str = "http://127.0.0.1:3000"
    email_sender: str = "payments@clinicpay.local"
    secrets_prefix: str = "clinicpay"
    operator_key_secret: str = ""
    operator_key: str = ""  # only the local stack sets this; in AWS the key lives in Secrets Manager
    fintoc_api_base: str = "https://api.fintoc.com"
    monobank_api_base: str = "https://api.monobank.ua"
    stripe_api_base: str = "https://api.stripe.com"
    checkbox_api_base: str = "https://api.checkbox.ua"
    # Each function's job queue (clinicpay.fanout): its dispatcher sends one message per shard there.
    create_link_jobs_queue_url: str = ""
    fiscalize_jobs_queue_url: str = ""
    tokenize_jobs_queue_url: str = ""
    provider_timeout_seconds: float = 8.0
    # Where /docs loads its viewer from: empty = the pinned CDN URL (api/docs_viewer.json); the
    # local stack serves the same file, fetched from npm at `make` time, so it works offline.
    docs_viewer_url: str = ""
    secrets_max_age_seconds: int = 300
    # Public routes (the booking widget): requests per fixed window, per client address and per
    # clinic. "write" is booking and starting a card save; "read" is the service list and the
    # payment-status poll (one a second for up to two minutes after paying). A patient books once
    # or twice; a script booking 30 times in 7 s meets a 429 at its 11th.
    public_window_seconds: int = 600
    public_writes_per_client: int = 10
    public_writes_per_clinic: int = 300
    public_reads_per_client: int = 600
    public_reads_per_clinic: int = 30000

    @classmethod
    def from_env(cls) -> Settings:
        """Each field from the variable of its name in capitals, when set and not empty; a value
        that is not of the field's type stops the container (ValueError) rather than run misconfigured."""
        env = os.environ
        values: dict[str, str | int | float] = {}
        for field in fields(cls):
            raw = env.get(field.name.upper())
            if raw:
                try:
                    values[field.name] = _CONVERT[str(field.type)](raw)
                except ValueError:
                    raise ValueError(f"{field.name.upper()} must be {_KIND[str(field.type)]}") from None
        if env.get("CLINICPAY_OPERATOR_KEY"):
            values["operator_key"] = env["CLINICPAY_OPERATOR_KEY"]
        return cls(**values)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
