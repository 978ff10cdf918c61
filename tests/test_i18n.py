"""Both languages: every message has a Chinese translation, no template shows
untranslated text, and the language is chosen as promised."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from sqlalchemy import select

from labshare.models import Role, User
from tests.conftest import compile_catalogues

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "labshare" / "translations"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}


def _catalog(locale: str) -> Any:
    with (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def _extracted() -> dict[str, list[str]]:
    """msgid -> where it is used, from code and templates, as `make extract-messages`."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogues() -> None:
    """`make test` and the test session compile the catalogues; compile here too
    when a .mo is stale (a .po edited during the session)."""
    compile_catalogues()


def test_extraction_finds_the_code_and_the_templates() -> None:
    found = _extracted()
    assert (  # labshare/accounts/accounts.py
        "Wrong email address or password, or too many attempts: wait a minute and try again."
        in found
    )
    assert "Skip to content" in found  # templates/base.html
    assert "Geometric / length" in found  # lazy_gettext in labshare/labels.py


def test_every_message_has_a_chinese_translation() -> None:
    catalog = _catalog("zh_CN")
    untranslated = []
    for msgid, places in sorted(_extracted().items()):
        message = catalog.get(msgid)
        strings = (
            ()
            if message is None
            else (message.string,)
            if isinstance(message.string, str)
            else message.string
        )
        if message is None or message.fuzzy or not strings or not all(s.strip() for s in strings):
            untranslated.append(f"{msgid!r} ({places[0]})")
    assert not untranslated, (
        "Run `make extract-messages` and translate in "
        "labshare/translations/zh_CN/LC_MESSAGES/messages.po:\n" + "\n".join(untranslated)
    )


def test_translations_keep_their_placeholders() -> None:
    problems = []
    for message, errors in _catalog("zh_CN").check():
        problems += [f"{message.id!r}: {e}" for e in errors]
    pattern = re.compile(r"%\((\w+)\)")
    for message in _catalog("zh_CN"):
        if not message.id or not message.string:
            continue
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        strings = [message.string] if isinstance(message.string, str) else message.string
        for s in strings:
            if set(pattern.findall(msgid)) != set(pattern.findall(s)):
                problems.append(f"{msgid!r}: placeholders differ in {s!r}")
    assert not problems, "\n".join(problems)


# -- no visible text outside {{ _() }} -----------------------------------------------

_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SCRIPT_STYLE = re.compile(r"<(script|style|code|kbd|samp)\b.*?</\1>", re.S | re.I)
_VISIBLE_ATTR = re.compile(
    r"\b(?:title|alt|placeholder|aria-label|aria-description|label)\s*=\s*\"([^\"]*)\"", re.I
)
_TAG = re.compile(r"<[^>]*>", re.S)
_ENTITY = re.compile(r"&#?\w+;")
LANGUAGE_NEUTRAL = {"UTC"}


def visible_letters(source: str) -> str:
    text = _JINJA.sub(" ", source)
    text = _HTML_COMMENT.sub(" ", text)
    text = _SCRIPT_STYLE.sub(" ", text)
    attributes = " ".join(_VISIBLE_ATTR.findall(text))
    text = _TAG.sub(" ", text) + " " + attributes
    text = _ENTITY.sub(" ", text)
    # Paths and URLs (``{{ base_url }}/bookings/...``) and a few international
    # abbreviations are the same in every language.
    words = [w for w in text.split() if "/" not in w and w.strip(".,:;()") not in LANGUAGE_NEUTRAL]
    return "".join(c for c in " ".join(words) if unicodedata.category(c).startswith("L"))


TEMPLATES = sorted(
    p for p in (ROOT / "templates").rglob("*") if p.suffix in {".html", ".txt"} and p.is_file()
)


def test_the_stripper_catches_untranslated_text() -> None:
    assert visible_letters('<p>{{ _("Hello") }}</p>') == ""
    assert visible_letters("<p>{{ _('Hi') }} – 12:30 · ✓</p>") == ""
    assert visible_letters("<p>Hello</p>") == "Hello"
    assert visible_letters('<input placeholder="Name">') == "Name"
    assert visible_letters("<h1>你好</h1>") == "你好"
    assert visible_letters("{# a comment #}<!-- another -->&nbsp;") == ""
    assert visible_letters("{{ base_url }}/bookings/{{ id }} <code>Bearer x</code> UTC") == ""
    assert visible_letters("UTC time") == "time"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_have_no_untranslated_text(template: Path) -> None:
    letters = visible_letters(template.read_text(encoding="utf-8"))
    assert letters == "", f"text outside {{{{ _() }}}} in {template.name}: {letters[:200]}"


# -- choosing the language ------------------------------------------------------------


def _heading(response: Any) -> str:
    found = re.search(r"<h1>(.*?)</h1>", response.get_data(as_text=True), re.S)
    assert found
    return found.group(1).strip()


def test_chinese_browsers_get_chinese(client: Any) -> None:
    response = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert _heading(response) == "找到满足您测量需求的仪器"
    assert '<html lang="zh-CN">' in response.get_data(as_text=True)
    assert "登录" in response.get_data(as_text=True)


def test_english_browsers_get_english(client: Any) -> None:
    response = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert _heading(response) == "Find the instrument your measurement needs"
    assert '<html lang="en">' in response.get_data(as_text=True)


def test_the_switch_overrides_the_browser(client: Any) -> None:
    english = {"Accept-Language": "en"}
    response = client.post(
        "/language", data={"locale": "zh_CN", "next": "/catalogue"}, headers=english
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/catalogue"
    assert _heading(client.get("/catalogue", headers=english)) == "实验室和仪器"
    client.post("/language", data={"locale": "en"})
    assert _heading(client.get("/catalogue", headers=english)) == "Laboratories and instruments"


def test_the_switch_ignores_unknown_languages_and_foreign_next(client: Any) -> None:
    response = client.post("/language", data={"locale": "fr", "next": "//evil.com"})
    assert response.headers["Location"] == "/"
    with client.session_transaction() as sess:
        assert "locale" not in sess


def test_signed_in_users_keep_their_language(
    client: Any, db: Any, login: Any, make_user: Any
) -> None:
    user = make_user(Role.SME, locale="zh_CN")
    db.session.commit()
    login(user)
    english = {"Accept-Language": "en"}
    assert _heading(client.get("/", headers=english)) == "找到满足您测量需求的仪器"
    client.post("/language", data={"locale": "en"})
    db.session.expire_all()
    assert db.session.scalar(select(User.locale).where(User.id == user.id)) == "en"
    assert _heading(client.get("/", headers={"Accept-Language": "zh-CN"})) == (
        "Find the instrument your measurement needs"
    )


def test_form_errors_come_in_the_users_language(client: Any, db: Any) -> None:
    response = client.post(
        "/register",
        data={"credit_code": "91440300", "locale": "zh_CN"},
        headers={"Accept-Language": "zh-CN"},
    )
    html = response.get_data(as_text=True)
    assert "统一社会信用代码应为 18 位，您输入的是 8 位。" in html
    assert "请填写此项。" in html
