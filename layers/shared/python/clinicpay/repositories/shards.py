"""Shards: the partition keys of sparse "work waiting" indexes, spread over SHARDS partitions.

An index whose partition key is a constant ("PENDING", "DUE") is one hot partition: every clinic's
writes land on it, and the job that reads it is one function over every clinic. Instead each item
carries `shard_key(kind, clinic_id)`, e.g. "PENDING#07": a clinic's items are always in the same
shard (so "this clinic's waiting items" is still one Query), and clinics spread evenly over the
shards (sha256 is uniform). A scheduled job then reads one shard per invocation (clinicpay.fanout).

SHARDS is 16 unless CLINICPAY_SHARDS says otherwise (1-100, read at import). Changing it re-homes
clinics: run `python -m ops.migrate_shard_keys --previous-shards <old>` after the deploy that changes
it, or items keyed for the old count wait unread.
"""

from __future__ import annotations

import hashlib
import os


def _configured() -> int:
    value = int(os.environ.get("CLINICPAY_SHARDS") or 16)
    if not 1 <= value <= 100:  # two digits in the key, so keys sort and read alike everywhere
        raise ValueError(f"CLINICPAY_SHARDS must be 1..100, not {value}")
    return value


SHARDS = _configured()


def shard_of(clinic_id: str, shards: int | None = None) -> int:
    """The clinic's shard, 0 <= shard < SHARDS: stable across processes, deploys and languages
    (the first 8 bytes of sha256 of the UTF-8 id, big-endian, modulo the shard count)."""
    count = SHARDS if shards is None else shards
    return int.from_bytes(hashlib.sha256(clinic_id.encode()).digest()[:8], "big") % count


def shard_key(kind: str, clinic_id: str, shards: int | None = None) -> str:
    """The partition key of the clinic's items of this kind: f"{kind}#{shard:02d}"."""
    return key_of(kind, shard_of(clinic_id, shards))


def key_of(kind: str, shard: int) -> str:
    """The partition key of one shard of a kind (what a job's Query names)."""
    return f"{kind}#{shard:02d}"


def all_shards() -> range:
    return range(SHARDS)


def checked(shard: object) -> int:
    """A shard number from a job message: an int in range, else ValueError (never a Query on a
    partition nothing writes)."""
    if isinstance(shard, bool) or not isinstance(shard, int | str):
        raise ValueError(f"shard must be an integer, not {shard!r}")
    value = int(shard)
    if not 0 <= value < SHARDS:
        raise ValueError(f"shard {value} is outside 0..{SHARDS - 1}")
    return value
