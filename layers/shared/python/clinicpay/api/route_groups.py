"""Route groups: a function's routes live in modules of its folder, each loaded by the first request
to one of its paths (cold start: bench/import_time.py).

A function's `app.py` builds the resolver and names its groups and the paths each serves:

    app = make_resolver()
    app.route_groups(__file__, {"payment_page": ("/pay/<token>", "/pay/<token>/result")})

`functions/<name>/payment_page.py` declares those routes as any module would, on the resolver that
is loading it:

    app = loading_routes()

    @app.get("/pay/<token>", access=Access.LINK_TOKEN)
    def pay_page(token: str) -> Response: ...

A request loads every group with a path matching its own (whatever the method), so the routes that
compete for it are all there before Powertools picks one. What a group imports (its request models,
use cases, repositories, providers) is paid only by the containers that serve it, once. With
SnapStart every group is loaded before the snapshot. `tests/unit/test_route_groups.py` checks that
each group declares exactly the paths its module registers.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clinicpay.api.resolver import ClinicpayResolver

_loading: list[ClinicpayResolver] = []
_lock = threading.RLock()  # Lambda runs one request at a time; a local server might not


def loading_routes() -> ClinicpayResolver:
    """The resolver whose route group is being loaded: the `app` a group module declares routes on."""
    if not _loading:
        raise RuntimeError("a route group is loaded by its function's resolver (app.route_groups), not imported")
    return _loading[-1]


@contextmanager
def collector_paused() -> Iterator[None]:
    """For code loaded on first use, after the handler module (a route group, a route's validation):
    no garbage collection while it loads, and what it loaded frozen, as clinicpay.coldstart does for
    the handler's import (a first request ran twice the collections without: bench/import_time.py).
    Inside the import or another load (collector already paused), or with the collector turned off,
    it changes nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def function_module(anchor: str, name: str) -> ModuleType:
    """`name`.py from the folder of `anchor` (a function's folder), loaded once per process. Function
    folders are not packages and each may have a module of the same name, so each is kept under a name
    of its own."""
    folder = Path(anchor).resolve().parent
    module_name = f"clinicpay_function_{folder.name}_{name}"
    with _lock:
        return sys.modules.get(module_name) or _execute(folder / f"{name}.py", module_name)


def _execute(path: Path, module_name: str) -> ModuleType:
    # Registered in sys.modules first: pydantic resolves a deferred model's annotations through it.
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


@dataclass
class RouteGroup:
    anchor: str
    name: str
    rules: tuple[str, ...]
    compile_regex: Callable[[str], re.Pattern[str]]  # the resolver's, the pattern Powertools routes by
    loaded: bool = False

    def serves(self, path: str, path_segments: tuple[str, ...] | None = None) -> bool:
        segments = _path_segments(path) if path_segments is None else path_segments
        return any(may_route(rule, path, self.compile_regex, segments) for rule in self.rules)


def may_route(rule: str, path: str, compile_regex: Callable[[str], re.Pattern[str]],
              path_segments: tuple[str, ...] | None = None) -> bool:
    """Whether Powertools could route `path` to `rule`, told from the segments where they make it sure:
    a `<param>` segment takes any non-empty segment (Powertools' never spans a slash; which characters
    it takes, Powertools checks), a segment of letters, digits, `_` and `-` only itself. Any other rule
    (a `.` is any character to Powertools' regex) is matched by Powertools' pattern, compiled on first
    use. Compiling each rule's pattern up front would add about 0.4 ms a rule to every import
    (bench/import_time.py). This may say yes where Powertools then refuses (a group loaded for
    nothing), never no where it would route (a request answered 404 until its group loads)."""
    rule_segments = _rule_segments(rule)
    if rule_segments is None:
        return compile_regex(rule).match(path) is not None
    given = _path_segments(path) if path_segments is None else path_segments
    return len(given) == len(rule_segments) and all(
        bool(part) if literal is None else part == literal for literal, part in zip(rule_segments, given, strict=True))


@functools.cache
def _rule_segments(rule: str) -> tuple[str | None, ...] | None:
    """A rule's segments, None for each `<param>`; None for a rule only Powertools' regex can match.
    Worked out once per rule: a warm request to a function with groups not yet loaded asks every one
    of them (bench/warm_path.py)."""
    parts = rule.split("/")
    if not all(_is_param(part) or all(c.isalnum() or c in "_-" for c in part) for part in parts):
        return None
    return tuple(None if _is_param(part) else part for part in parts)


def _path_segments(path: str) -> tuple[str, ...]:
    return tuple(path.removesuffix("\n").split("/"))  # Powertools' `$` also matches before a final newline


def _is_param(segment: str) -> bool:
    return len(segment) > 2 and segment[0] == "<" and segment[-1] == ">" and (
        all(c.isalnum() or c == "_" for c in segment[1:-1]))


class RouteGroups:
    """The groups of one resolver, loaded on demand."""

    def __init__(self, resolver: ClinicpayResolver, anchor: str, groups: Mapping[str, tuple[str, ...]]) -> None:
        self._resolver = resolver
        self.groups = [RouteGroup(anchor, name, tuple(rules), resolver._compile_regex)
                       for name, rules in groups.items()]

    @property
    def pending(self) -> bool:
        return not all(group.loaded for group in self.groups)

    def load(self, path: str | None = None) -> None:
        """Loads the groups serving `path`, or every group."""
        segments = None if path is None else _path_segments(path)
        with _lock:
            for group in self.groups:
                if not group.loaded and (path is None or group.serves(path, segments)):
                    self.load_group(group)

    def load_group(self, group: RouteGroup) -> None:
        folder = Path(group.anchor).resolve().parent
        with _lock, collector_paused():
            _loading.append(self._resolver)
            try:
                # One module per resolver: a handler loaded twice in one process (tests) gets its
                # routes registered on each of its resolvers.
                _execute(folder / f"{group.name}.py", f"clinicpay_routes_{folder.name}_{group.name}_{id(self)}")
            finally:
                _loading.pop()
            group.loaded = True
