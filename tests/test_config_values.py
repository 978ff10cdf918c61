"""Settings with a value they cannot take stop the application at start-up,
naming the variable, instead of quietly falling back to a default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _import_config(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SQLITE_", "MAIL_", "LABSHARE_CONFIG", "REMINDER_"))
    }
    clean.update(env)
    code = (
        "import config\n"
        "c = config.config_from_env()\n"
        "print(c.__name__, c.SQLITE_WRITE_LOCK, c.MAIL_USE_TLS, c.MAIL_PORT, c.REMINDER_HOURS)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SQLITE_WRITE_LOCK": "ture"}, "SQLITE_WRITE_LOCK='ture'"),
        ({"MAIL_USE_TLS": "enabled"}, "MAIL_USE_TLS='enabled'"),
        ({"MAIL_PORT": "25x"}, "MAIL_PORT='25x'"),
        ({"REMINDER_HOURS": "24,one"}, "REMINDER_HOURS='24,one'"),
        ({"LABSHARE_CONFIG": "prod"}, "LABSHARE_CONFIG='prod'"),
        ({"TEXT_INDEX": "maybe"}, "TEXT_INDEX='maybe'"),
        ({"FREE_TIME_MEMO_RESOURCES": "lots"}, "FREE_TIME_MEMO_RESOURCES='lots'"),
        ({"SEARCH_ROW_MEMO": "5k"}, "SEARCH_ROW_MEMO='5k'"),
    ],
)
def test_a_value_the_setting_cannot_take_stops_start_up(env: dict[str, str], named: str) -> None:
    run = _import_config(**env)
    assert run.returncode != 0
    assert "SettingError" in run.stderr and named in run.stderr


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        ({}, "DevelopmentConfig True False 25 [24, 1]"),
        (
            {"SQLITE_WRITE_LOCK": " OFF ", "MAIL_USE_TLS": "Yes", "MAIL_PORT": "587"},
            "DevelopmentConfig False True 587 [24, 1]",
        ),
        (
            {"SQLITE_WRITE_LOCK": "0", "MAIL_USE_TLS": "1"},
            "DevelopmentConfig False True 25 [24, 1]",
        ),
        (
            {"SQLITE_WRITE_LOCK": "", "REMINDER_HOURS": "48, 2"},
            "DevelopmentConfig True False 25 [48, 2]",
        ),
        ({"LABSHARE_CONFIG": "testing"}, "TestingConfig True False 25 [24, 1]"),
    ],
)
def test_accepted_spellings_and_empty_values(env: dict[str, str], printed: str) -> None:
    run = _import_config(**env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == printed
