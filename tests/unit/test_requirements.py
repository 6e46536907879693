"""The layer ships exactly the runtime pins the tests run with, and dev tools are pinned."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_layer_requirements_match_runtime() -> None:
    layer = ROOT / "layers/shared/python/requirements.txt"
    runtime = ROOT / "requirements/runtime.txt"
    assert layer.read_text() == runtime.read_text(), (
        "layers/shared/python/requirements.txt must be identical to requirements/runtime.txt "
        "(sam build installs the first, the tests run with the second)"
    )


def test_every_requirement_is_pinned() -> None:
    for name in ("runtime.txt", "dev.txt", "sam.txt", "fuzz.txt"):
        for line in _lines(ROOT / "requirements" / name):
            if line.startswith("-r "):
                continue
            assert "==" in line, f"requirements/{name}: pin an exact version for {line!r}"
