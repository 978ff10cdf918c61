"""Pages for institute staff: dashboard, catalogue management, bulk import."""

from labshare.web.manage import checkin_code as _checkin_code  # noqa: F401  (check-in: routes)
from labshare.web.manage import holidays as _holidays  # noqa: F401  (routes)
from labshare.web.manage import on_behalf as _on_behalf  # noqa: F401  (routes)
from labshare.web.manage import qualifications as _qualifications  # noqa: F401  (routes)
from labshare.web.manage import quotas as _quotas  # noqa: F401  (booking policies: routes)
from labshare.web.manage import resources as _resources  # noqa: F401  (routes)
from labshare.web.manage import schedule as _schedule  # noqa: F401  (routes)
from labshare.web.manage.importing import register_import_command
from labshare.web.manage.views import bp

__all__ = ["bp", "register_import_command"]
