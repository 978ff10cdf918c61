"""Statistics pages (dashboards, export download) and ``flask export-usage``."""

from labshare.reports.cli import register_export_command
from labshare.reports.views import bp

__all__ = ["bp", "register_export_command"]
