"""clinicpay.ports is a package of one module per capability; `from clinicpay.ports import X` loads X's
module on first use. What it lists, what its modules define and what the type checker is shown agree,
importing it loads no port module, and a SnapStart snapshot holds every port model built."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import clinicpay.ports as ports

ROOT = Path(__file__).resolve().parents[2]
PORTS = ROOT / "layers/shared/python/clinicpay/ports"
ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
       "POWERTOOLS_TRACE_DISABLED": "true", "PATH": "/usr/bin:/bin"}


def _defined(module: str) -> set[str]:
    """The public names a port module defines at its top level (classes, functions, type aliases)."""
    tree = ast.parse((PORTS / f"{module}.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return {name for name in names if not name.startswith("_")}


def _shown_to_the_type_checker() -> dict[str, set[str]]:
    """What `if TYPE_CHECKING:` in ports/__init__.py imports, by module."""
    tree = ast.parse((PORTS / "__init__.py").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    shown: dict[str, set[str]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        shown.setdefault(node.module.removeprefix("clinicpay.ports."), set()).update(a.name for a in node.names)
    return shown


def test_every_port_module_is_listed_with_every_name_it_defines() -> None:
    modules = {path.stem for path in PORTS.glob("*.py") if path.stem != "__init__"}
    assert set(ports.MODULES) == modules
    for module, names in ports.MODULES.items():
        assert set(names) == _defined(module), module
    assert _shown_to_the_type_checker() == {module: set(names) for module, names in ports.MODULES.items()}
    assert sorted(ports.__all__) == sorted(name for names in ports.MODULES.values() for name in names)


@pytest.mark.parametrize("name", sorted({name for names in ports.MODULES.values() for name in names}))
def test_the_package_gives_each_name_from_its_module(name: str) -> None:
    module = next(module for module, names in ports.MODULES.items() if name in names)
    namespace: dict[str, object] = {}
    exec(f"from clinicpay.ports import {name}", namespace)
    assert namespace[name] is getattr(sys.modules[f"clinicpay.ports.{module}"], name)


def test_a_name_the_package_does_not_have_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="CheckoutRequests"):
        exec("from clinicpay.ports import CheckoutRequests", {})
    with pytest.raises(AttributeError):
        _ = ports.load  # type: ignore[attr-defined]


def _run(program: str) -> object:
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_or_one_name_loads_only_that_names_module() -> None:
    program = (f"import json, sys\nsys.path.insert(0, {str(ROOT / 'layers/shared/python')!r})\n"
               "import clinicpay.ports\nfirst = sorted(m for m in sys.modules if m.startswith('clinicpay.ports.'))\n"
               "from clinicpay.ports import OutgoingMessage\n"
               "print(json.dumps([first, sorted(m for m in sys.modules if m.startswith('clinicpay.ports.'))]))")
    assert _run(program) == [[], ["clinicpay.ports.messaging"]]


SNAPSHOT = """
import importlib.util, json, sys
sys.path[:0] = [{hooks!r}, {layer!r}]
import snapshot_restore_py
spec = importlib.util.spec_from_file_location("handler", {app!r})
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)
before = sorted(m for m in sys.modules if m.startswith("clinicpay.ports."))
for hook in reversed(snapshot_restore_py.hooks):  # Lambda runs them in the reverse order of registration
    hook()
from clinicpay.domain.model import Model
pending, unbuilt = [Model], []
while pending:
    model = pending.pop()
    pending.extend(model.__subclasses__())
    if not model.__pydantic_complete__:
        unbuilt.append(model.__module__ + "." + model.__name__)
print(json.dumps([before, sorted(m for m in sys.modules if m.startswith("clinicpay.ports.")), unbuilt,
                  "clinicpay.repositories.appointments" in sys.modules]))
"""


@pytest.mark.parametrize(("function", "every_port"), [("create_link", True), ("tokenize", True), ("fiscalize", True),
                                                      ("admin", False)])
def test_a_snapshot_holds_every_port_module_loaded_and_its_models_built(function: str, every_port: bool,
                                                                        tmp_path: Path) -> None:
    # Lambda's managed runtimes ship snapshot_restore_py; this one records what is registered.
    # create_link's routes use no card or QR port, fiscalize's no card port: a snapshot holds them all,
    # built, so no restored container builds a port model on a request. admin uses no port at all.
    (tmp_path / "snapshot_restore_py.py").write_text("hooks = []\ndef register_before_snapshot(func):\n"
                                                     "    hooks.append(func)\n")
    program = SNAPSHOT.format(hooks=str(tmp_path), layer=str(ROOT / "layers/shared/python"),
                              app=str(ROOT / "functions" / function / "app.py"))
    every_module = sorted(f"clinicpay.ports.{module}" for module in ports.MODULES)
    before, loaded, unbuilt, appointments_code = _run(program)  # type: ignore[misc]
    assert (before, loaded, unbuilt) == ([], every_module if every_port else [], [])
    # tokenize's card repositories import the appointments' code on first use (a refund, a dispute):
    # the snapshot holds it too (snapstart.load_before_snapshot).
    assert appointments_code or function in ("fiscalize", "admin")
