"""The audit log's pages: staff read their institute's log, admins everything."""

from labshare.web.audit.views import bp

__all__ = ["bp"]
