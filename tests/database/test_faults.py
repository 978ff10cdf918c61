"""Faults: the database goes away and comes back."""

from __future__ import annotations

from pathlib import Path

import flask_migrate

from config import TestingConfig
from labshare import create_app
from labshare.extensions import db as _db


def test_database_down_gives_503_and_a_friendly_page_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "labshare.db"
    app = create_app(
        TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}", INSTANCE_DIR=str(tmp_path)
    )
    with app.app_context():
        flask_migrate.upgrade()
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200

    # The database disappears: its file is moved away and a directory takes its place.
    with app.app_context():
        _db.engine.dispose()
    moved = tmp_path / "elsewhere.db"
    path.rename(moved)
    path.mkdir()
    try:
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json() == {"status": "error", "database": "unreachable"}
        page = client.get("/")
        assert page.status_code == 500
        html = page.get_data(as_text=True)
        assert "Traceback" not in html and "sqlite3" not in html and "OperationalError" not in html
        assert "Reference:" in html
        assert page.headers["Content-Security-Policy"]
        api = client.get("/api/v1/resources")
        assert api.status_code == 500 and api.get_json()["error"]["code"] == "internal_error"
    finally:
        path.rmdir()
        moved.rename(path)

    # It comes back: the next requests succeed without a restart.
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200
    with app.app_context():
        _db.engine.dispose()
