"""`make venv` without python3.11 or python3.12 says what is missing and how to get it, not a bare
shell error (`python3.11: not found`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("make", "sh", "id", "sha256sum", "cut", "cat", "rm", "touch", "awk", "env")


def _path_without_python(tmp_path: Path) -> str:
    """A PATH holding the tools the Makefile needs, and no Python at all."""
    found = {tool: shutil.which(tool) for tool in TOOLS}
    if not all(found.values()):
        pytest.skip(f"missing {[t for t, p in found.items() if not p]}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, path in found.items():
        (bin_dir / tool).symlink_to(str(path))
    return str(bin_dir)


def test_make_venv_without_python_3_11_or_3_12_explains_itself(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = subprocess.run(["make", "--no-print-directory", "venv", f"VENV={venv}"], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": _path_without_python(tmp_path)}, timeout=60)
    assert result.returncode != 0
    assert "No python3.11 or python3.12 on PATH" in result.stderr
    assert "make PYTHON=/path/to/python3.12" in result.stderr
    assert "not found" not in result.stderr
    assert not venv.exists()


def test_make_names_an_interpreter_of_another_version(tmp_path: Path) -> None:
    other = next((p for p in ("/root/.pyenv/versions/3.13.0/bin/python", shutil.which("python3.13"),
                              shutil.which("python3.10")) if p and Path(p).exists()), None)
    if other is None:
        pytest.skip("no Python other than 3.11/3.12 here to name")
    result = subprocess.run(["make", "--no-print-directory", "check-python", f"PYTHON={other}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"{other} is Python 3." in result.stderr and "needs Python 3.11 or 3.12" in result.stderr
