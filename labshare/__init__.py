"""LabShare: metrology institutes share their labs and instruments with SMEs."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from config import Config, ProductionConfig, config_from_env, secret_key_problem


def create_app(config: type[Config] | None = None, **overrides: Any) -> Flask:
    config = config or config_from_env()
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    from labshare.jsonio import OrjsonProvider

    app.json = OrjsonProvider(app)
    app.config.from_object(config)
    app.config.update(overrides)
    _ensure_secret_key(app, config)
    logging.basicConfig(level=app.config["LOG_LEVEL"])

    from labshare import web
    from labshare.booking import policies

    policies.register()  # before anything books: the engine asks its policies
    register_extensions(app)
    web.register_request_hooks(app)
    register_blueprints(app)
    from labshare import retry

    retry.install(app)  # after every view is registered
    register_error_handlers(app)
    register_cli(app)
    from labshare import fastpath

    fastpath.install(app)
    _trust_proxies(app)
    start_scheduler(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXY_COUNT`` reverse proxies the client's address and scheme
    come from the last hops of X-Forwarded-For/-Proto; without it every client has
    the proxy's address (one person's bad logins would throttle everyone)."""
    count = int(app.config.get("TRUSTED_PROXY_COUNT") or 0)
    if count > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=0, x_port=0, x_prefix=0
        )


def _ensure_secret_key(app: Flask, config: type[Config]) -> None:
    if issubclass(config, ProductionConfig):
        config.check()
        problem = secret_key_problem(app.config.get("SECRET_KEY"))
        if problem:
            raise RuntimeError(problem)
        if app.config.get("SQLALCHEMY_DATABASE_URI", "").startswith("sqlite"):
            app.logger.warning("Production is running on SQLite; set DATABASE_URL to PostgreSQL")
        return
    if app.config.get("SECRET_KEY"):
        return
    # Development: a random key kept in the instance folder, never committed.
    instance = Path(app.config["INSTANCE_DIR"])
    instance.mkdir(parents=True, exist_ok=True)
    key_file = instance / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    app.config["SECRET_KEY"] = key_file.read_text().strip()


def register_extensions(app: Flask) -> None:
    from labshare.database import configure_engine
    from labshare.extensions import babel, csrf, db, limiter, login_manager, migrate
    from labshare.web import select_locale, select_timezone

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    limiter.init_app(app)
    with app.app_context():
        configure_engine(db.engine, write_lock=bool(app.config.get("SQLITE_WRITE_LOCK", True)))
    from labshare.catalogue import search_index

    search_index.install()


def register_blueprints(app: Flask) -> None:
    from labshare.api import bp as api_bp
    from labshare.orders.views import bp as orders_bp
    from labshare.web.account import bp as account_bp
    from labshare.web.admin import bp as admin_bp
    from labshare.web.audit import bp as audit_bp
    from labshare.web.auth import bp as auth_bp
    from labshare.web.bookings import bp as bookings_bp
    from labshare.web.bookings import notifications_bp
    from labshare.web.catalogue import bp as catalogue_bp
    from labshare.web.company import bp as company_bp
    from labshare.web.main import bp as main_bp
    from labshare.web.manage import bp as manage_bp
    from labshare.web.reports import bp as reports_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(catalogue_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(bookings_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(manage_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(company_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(audit_bp)


def register_error_handlers(app: Flask) -> None:
    from labshare.errors import register_error_handlers as register

    register(app)


def register_cli(app: Flask) -> None:
    from labshare.backup_cli import register_backup_commands
    from labshare.cli import register_commands
    from labshare.jobs.cli import register_job_commands
    from labshare.web.manage import register_import_command
    from labshare.web.reports import register_export_command

    register_commands(app)
    register_job_commands(app)
    register_import_command(app)
    register_export_command(app)
    register_backup_commands(app)


def start_scheduler(app: Flask) -> None:
    """The in-process scheduler (``SCHEDULER_ENABLED``); see labshare/jobs/scheduler.py."""
    from labshare.jobs.scheduler import start_in_web_process

    start_in_web_process(app)
