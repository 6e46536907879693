"""Shards of the sparse indexes that jobs walk (WAVE2: owned by the jobs helper; this is the
stand-in with the same names, for the card reconciliation index until theirs is merged).

A sparse index whose partition key were a constant would put every clinic's items in one
partition; `shard_key(kind, clinic_id)` spreads them over SHARDS partitions by a stable hash of the
clinic, and a job run processes one shard.
"""

from __future__ import annotations

import hashlib
import os

SHARDS = int(os.environ.get("CLINICPAY_SHARDS") or 16)


def shard_of(clinic_id: str) -> int:
    """Stable across processes and releases (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(clinic_id.encode()).digest()[:4], "big") % SHARDS


def shard_key(kind: str, clinic_id: str) -> str:
    return f"{kind}#{shard_of(clinic_id):02d}"
