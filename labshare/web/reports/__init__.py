"""Statistics pages (dashboards, export download) and ``flask export-usage``."""

from labshare.web.reports.cli import register_export_command
from labshare.web.reports.views import bp

__all__ = ["bp", "register_export_command"]
