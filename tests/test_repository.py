"""The repository holds sources only: nothing compiled or generated is tracked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What a build, a run or a test leaves behind: compiled catalogues and bytecode,
# virtual environments, instance folders (the development database, exports,
# backups), database files.
GENERATED_SUFFIXES = (".mo", ".pyc", ".pyo", ".db", ".sqlite", ".sqlite3")
GENERATED_FOLDERS = ("__pycache__", ".venv", "venv", "instance")


def generated(path: str) -> bool:
    p = PurePosixPath(path)
    return p.name.endswith(GENERATED_SUFFIXES) or any(part in GENERATED_FOLDERS for part in p.parts)


def tracked_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot list the tracked files")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.decode(errors='replace').strip()}")
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_the_rule_knows_generated_files() -> None:
    assert generated("labshare/translations/zh_Hans_CN/LC_MESSAGES/messages.mo")
    assert generated("labshare/__pycache__/web.cpython-311.pyc")
    assert generated("instance/exports/usage-2030-01.csv")
    assert generated(".venv/bin/python")
    assert generated(".venv")  # a worktree's link to a shared environment, too
    assert generated("labshare.db")
    assert not generated("labshare/translations/zh_CN/LC_MESSAGES/messages.po")
    assert not generated("labshare/models/instance_admin.py")


def test_no_compiled_or_generated_file_is_tracked() -> None:
    files = tracked_files()
    assert "config.py" in files  # the listing itself works
    offenders = sorted(name for name in files if generated(name))
    assert offenders == [], (
        "compiled or generated files are tracked (git rm --cached them; "
        f".gitignore covers them): {offenders}"
    )
