"""Shards of the sparse "work waiting" indexes (WAVE2): a clinic's items always land in one shard,
and a job reads one shard per invocation.

A stand-in with the WAVE2 interface (`SHARDS`, `shard_of`, `shard_key`) for the indexes this branch
adds (undecided QR invoices and refunds, shift schedules, open shifts); the jobs helper's module
of the same name supersedes it.
"""

from __future__ import annotations

import hashlib
import os

SHARDS = int(os.environ.get("CLINICPAY_SHARDS") or 16)


def shard_of(clinic_id: str) -> int:
    """Stable across processes and deploys: the first 8 bytes of sha256 of the id, modulo SHARDS."""
    return int.from_bytes(hashlib.sha256(clinic_id.encode()).digest()[:8], "big") % SHARDS


def shard_key(kind: str, clinic_id: str) -> str:
    return key_of(kind, shard_of(clinic_id))


def key_of(kind: str, shard: int) -> str:
    """The partition a job names to read one shard of a kind."""
    return f"{kind}#{shard:02d}"


def all_shards() -> range:
    return range(SHARDS)
