"""The README stays true: every environment variable the code reads is documented."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_READ = re.compile(
    r"""(?:os\.environ\.get|os\.environ\[|_bool|_int|_list_int)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def _env_names() -> set[str]:
    names: set[str] = set()
    for path in [
        ROOT / "config.py",
        *(ROOT / "labshare").rglob("*.py"),
        *(ROOT / "tests").rglob("conftest.py"),
    ]:
        names.update(ENV_READ.findall(path.read_text(encoding="utf-8")))
    return names


def test_every_environment_variable_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = _env_names()
    assert "DATABASE_URL" in names  # the scan itself works
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == [], f"undocumented environment variables: {missing}"


def test_only_config_reads_the_environment():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "labshare").rglob("*.py")
        if "os.environ" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
