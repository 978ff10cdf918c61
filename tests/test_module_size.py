"""No module of labshare/ over about 500 lines: one that grows past that does two
things and is split by what it does (docs/architecture.md, "Layers")."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "labshare"
LIMIT = 500


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_over_the_limit() -> None:
    too_long = {
        str(path.relative_to(ROOT)): _lines(path)
        for path in sorted(ROOT.rglob("*.py"))
        if _lines(path) > LIMIT
    }
    assert too_long == {}
