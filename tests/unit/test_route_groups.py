"""Route groups (api/route_groups.py): each function's groups declare exactly the paths their modules
register, no two groups compete for one request, and a request loads only the groups serving its path."""

from __future__ import annotations

import gc
import importlib.util
import itertools
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from clinicpay.api.resolver import ClinicpayResolver, make_resolver

ROOT = Path(__file__).resolve().parents[2]
# webhook keeps its three routes in app.py: each already loads its own provider's code when called.
FUNCTIONS: list[str] = ["admin", "create_link", "fiscalize", "tokenize"]  # each function joins as its routes move into groups


def _handler(function: str) -> Any:
    name = f"route_groups_test_{function}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / function / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _routes(app: ClinicpayResolver) -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in app._static_routes + app._dynamic_routes}


def _may_compete(first: str, second: str) -> bool:
    """Whether some path could match both rules (Powertools' <param> never spans a slash)."""
    a, b = first.strip("/").split("/"), second.strip("/").split("/")
    return len(a) == len(b) and all(x == y or x.startswith("<") or y.startswith("<") for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_group_registers_exactly_the_paths_it_declares(function: str) -> None:
    app = _handler(function).app
    groups = app._route_groups
    assert groups is not None, f"{function} declares its routes in route groups"
    registered: dict[str, set[tuple[str, str]]] = {}
    for group in groups.groups:
        before = _routes(app)
        groups.load_group(group)
        registered[group.name] = _routes(app) - before
        assert {path for _, path in registered[group.name]} == set(group.rules), group.name
    for (one, first), (other, second) in itertools.combinations(registered.items(), 2):
        for (method, rule), (other_method, other_rule) in itertools.product(first, second):
            assert not (method == other_method and _may_compete(rule, other_rule)), (
                f"{method} {rule} ({one}) and {other_rule} ({other}) may match one request: put them in one group")


def test_a_request_loads_only_the_groups_serving_its_path(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    for name, rule, parameters in (("first", "/things/<thing_id>", "thing_id: str"), ("second", "/other", "")):
        (tmp_path / f"{name}.py").write_text(
            "from clinicpay.api.auth import Access\n"
            "from clinicpay.api.route_groups import loading_routes\n"
            "import gc\n"
            "app = loading_routes()\n"
            "COLLECTING_WHILE_LOADED = gc.isenabled()\n"
            f"@app.get({rule!r}, access=Access.NONE)\n"
            f"def {name}({parameters}) -> dict[str, str]:\n"
            f"    return {{'group': {name!r}}}\n")
    app = make_resolver()
    app.route_groups(str(tmp_path / "app.py"), {"first": ("/things/<thing_id>",), "second": ("/other",)})
    def event(path: str) -> dict[str, Any]:
        return {"version": "2.0", "rawPath": path, "headers": {}, "routeKey": "$default", "isBase64Encoded": False,
                "requestContext": {"stage": "$default", "http": {"method": "GET", "path": path}}}

    answer = app.resolve(event("/things/a"), None)
    assert answer["statusCode"] == 200 and '"first"' in answer["body"]
    assert [group.loaded for group in app._route_groups.groups] == [True, False]
    # A group loads as the handler module does: no garbage collection meanwhile (route_groups.collector_paused).
    [module] = [m for name, m in sys.modules.items() if name.startswith(f"clinicpay_routes_{tmp_path.name}_first")]
    assert module.COLLECTING_WHILE_LOADED is False and gc.isenabled()
    assert app.resolve(event("/nothing"), None)["statusCode"] == 404
    assert [group.loaded for group in app._route_groups.groups] == [True, False]
    app.load_routes()
    assert all(group.loaded for group in app._route_groups.groups)
    assert re.search("second", str(app.get_openapi_schema().paths))


RULES = ("/health", "/openapi.json", "/", "/v1/clinics", "/v1/clinics/<clinic_id>", "/v1/clinics/<clinic_id>/staff-keys",
         "/v1/clinics/<clinic_id>/message-templates/<kind>/<channel>/<locale>", "/files/<name>.pdf", "/a/<x>-<y>",
         "/trailing/", "/ñandú/<id>")
VALUES = ("c1", "cl_01-X", "a.b", "ñandú", "%2F", "a b", "", "a/b", "?", "<>", "x\n")


def _paths(rule: str) -> set[str]:
    """Paths that Powertools' pattern for `rule` may or may not match: its parameters filled in with
    odd values, and the rule bent (a slash more, a final newline, its dots as other characters)."""
    filled = {re.sub(r"<\w+>", value, rule) for value in VALUES}
    bent = {rule.replace(".", "/"), rule.replace(".", "X"), rule.upper(), rule.rstrip("/"), "/", "", "//"}
    return {variant for path in filled | bent for variant in (path, path + "/", path + "\n", path + "/x", "/x" + path)}


@pytest.mark.parametrize("rule", RULES)
def test_a_group_serves_every_path_powertools_would_route_to_its_rules(rule: str) -> None:
    from clinicpay.api.route_groups import may_route

    app = make_resolver()
    powertools = app._compile_regex(rule)
    for path in _paths(rule) | {path for other in RULES for path in _paths(other)}:
        routed = powertools.match(path) is not None
        # The other way round is allowed: a group loaded for a path Powertools then refuses costs time only.
        assert may_route(rule, path, app._compile_regex) or not routed, f"{rule} routes {path!r}"


@pytest.mark.parametrize("rule", [rule for rule in RULES if "." not in rule])
def test_a_group_serves_no_well_formed_path_powertools_would_not_route_to_its_rules(rule: str) -> None:
    # Parameters of the characters Powertools takes: the two agree both ways.
    from clinicpay.api.route_groups import may_route

    app = make_resolver()
    powertools = app._compile_regex(rule)
    for path in {path for other in RULES for path in _paths(other)}:
        if all(re.fullmatch(r"[\w\-.~%]*", segment) for segment in path.removesuffix("\n").split("/")):
            assert may_route(rule, path, app._compile_regex) == (powertools.match(path) is not None), (rule, path)
