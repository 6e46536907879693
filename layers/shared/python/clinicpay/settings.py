"""Environment, read once per container into a typed model. Use cases never read os.environ."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel


class Settings(BaseModel):
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
        env = os.environ
        values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper())}
        if env.get("CLINICPAY_OPERATOR_KEY"):
            values["operator_key"] = env["CLINICPAY_OPERATOR_KEY"]
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
