"""SnapStart (published versions, template.yaml) snapshots a function once its init is done and
restores new containers from it. What we defer from import to first use (the X-Ray recorder, model
building) is done before the snapshot instead, so a restored container does not pay it either."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# Modules imported on first use (inside a function) that a snapshot should hold all the same.
_LOAD_BEFORE_SNAPSHOT: list[str] = []


def before_snapshot(func: Callable[[], Any]) -> None:
    """Run `func` before SnapStart takes the snapshot. Outside SnapStart (the hooks library ships in
    Lambda's managed Python runtimes only) nothing is registered and `func` waits for first use."""
    try:
        from snapshot_restore_py import register_before_snapshot  # type: ignore[import-not-found]
    except ImportError:
        return
    register_before_snapshot(func)


def load_before_snapshot(*modules: str) -> None:
    """Name modules this one imports on first use: before a snapshot they are imported, then every
    model built (clinicpay.domain.model.build_loaded_models), so a restored container pays neither."""
    _LOAD_BEFORE_SNAPSHOT.extend(modules)


def load_named_modules() -> None:
    for module in _LOAD_BEFORE_SNAPSHOT:
        importlib.import_module(module)
