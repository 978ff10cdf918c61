"""Click commands (`flask ...`). Each command is one transaction, committed at its end;
bad input is reported naming the option, and nothing is written."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click
from flask import Flask, current_app
from flask_babel import gettext as _
from sqlalchemy import select

from labshare.accounts.accounts import create_user
from labshare.accounts.credit_code import CreditCodeError, validate_credit_code
from labshare.campaign import check, first_use, stats_store
from labshare.campaign.periods import Period, Scope
from labshare.campaign.stored import total_counters
from labshare.database import begin_write
from labshare.demo.seed import demo_data_present, seed_demo
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.jobs.rollup import rollup
from labshare.models import Company, Institute, Role

#: Service field names -> the option that supplies them.
_OPTION_OF_FIELD = {
    "email": "EMAIL",
    "name": "--name",
    "role": "--role",
    "password": "--password",
    "institute": "--institute",
    "company": "--company-code",
    "credit_code": "--company-code",
    "company_code": "--company-code",
    "company_name": "--company-name",
    "locale": "--locale",
}


def _bad(option: str, message: object) -> click.BadParameter:
    return click.BadParameter(str(message), param_hint=f"'{option}'")


@click.command("create-user")
@click.argument("email")
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in Role]), help="Account role."
)
@click.option("--password", required=True, help="The account's password.")
@click.option("--name", default=None, help="Display name (default: the e-mail's local part).")
@click.option("--locale", default="zh_CN", type=click.Choice(["zh_CN", "en"]), show_default=True)
@click.option("--institute", "institute_code", default=None, help="Institute code (staff).")
@click.option("--company-code", default=None, help="Unified Social Credit Code (sme).")
@click.option("--company-name", default=None, help="Company name, when the company is new.")
def create_user_command(
    email: str,
    role: str,
    password: str,
    name: str | None,
    locale: str,
    institute_code: str | None,
    company_code: str | None,
    company_name: str | None,
) -> None:
    """Create an account EMAIL (and its company, when new)."""
    if institute_code is not None and role != Role.STAFF:
        raise _bad("--institute", "only a staff account belongs to an institute")
    if (company_code is not None or company_name is not None) and role != Role.SME:
        raise _bad("--company-code", "only an SME account belongs to a company")
    begin_write()
    try:
        institute = None
        if institute_code is not None:
            institute = db.session.scalar(
                select(Institute).where(Institute.code == institute_code.strip())
            )
            if institute is None:
                raise _bad("--institute", f"no institute has the code {institute_code!r}")
        company = None
        new_company = False
        if company_code is not None:
            try:
                code = validate_credit_code(company_code)
            except CreditCodeError as exc:
                raise _bad("--company-code", exc.message) from exc
            company = db.session.scalar(select(Company).where(Company.credit_code == code))
            if company is None:
                if not (company_name or "").strip():
                    raise _bad(
                        "--company-name",
                        "a new company needs a name (no company has this credit code yet)",
                    )
                assert company_name is not None
                company = Company(name=company_name.strip(), credit_code=code)
                db.session.add(company)
                new_company = True
        elif company_name is not None:
            raise _bad("--company-code", "a company is identified by its credit code")
        try:
            user = create_user(
                email,
                name=(name or email.split("@", 1)[0]).strip(),
                role=role,
                password=password,
                institute=institute,
                company=company,
                locale=locale,
            )
        except ValidationFailed as exc:
            option = _OPTION_OF_FIELD.get(exc.field or "", exc.field or "EMAIL")
            raise _bad(option, exc.message) from exc
        if new_company:
            # The operator vouches for a company made here; its first member runs it.
            user.company_admin = True
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    where = ""
    if user.institute is not None:
        where = f" at {user.institute.code}"
    elif user.company is not None:
        where = f" of {user.company.name} ({user.company.credit_code})"
    click.echo(f"Created {user.role} {user.email}{where}.")


@click.command("seed-demo")
@click.option(
    "--if-empty", is_flag=True, help="Do nothing when the database already has institutes."
)
def seed_demo_command(if_empty: bool) -> None:
    """Load realistic demo data (idempotent: a second run adds nothing)."""
    if current_app.config.get("IS_PRODUCTION"):
        # The demo accounts' passwords are public (README): never in production.
        raise click.ClickException("seed-demo refuses to run with LABSHARE_CONFIG=production.")
    started = time.perf_counter()
    begin_write()
    try:
        if if_empty and demo_data_present():
            db.session.rollback()
            click.echo("The database already has institutes; demo data not loaded.")
            return
        report = seed_demo()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    elapsed = time.perf_counter() - started
    created = {k: v for k, v in report.created.items() if v}
    if created:
        click.echo("Added: " + ", ".join(f"{v} {k}" for k, v in sorted(created.items())))
    else:
        click.echo("Demo data already complete; nothing added.")
    if report.unnormalised_units:
        click.echo(
            "Capability not normalised for: " + ", ".join(sorted(set(report.unnormalised_units)))
        )
    click.echo(f"Done in {elapsed:.1f} s. Demo logins:")
    width = max(len(email) for _r, email, _p in report.logins)
    click.echo(f"  {'role':<6}  {'email':<{width}}  password")
    for role, email, password in report.logins:
        click.echo(f"  {role:<6}  {email:<{width}}  {password}")


def _day_option(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _bad(option, _("%(field)s must be a date as YYYY-MM-DD.", field=option)) from None


def _stats_range(start: str | None, end: str | None) -> list[Period] | None:
    first, last = _day_option(start, "--from"), _day_option(end, "--to")
    if first is not None and last is not None and last <= first:
        raise _bad("--to", _("--to must be after --from."))
    known = check.booking_days()
    if known is None and (first is None or last is None):
        return None
    first = first or known[0] if known else first
    last = last or known[1] if known else last
    assert first is not None and last is not None
    return check.month_pieces(first, last)


@click.group("stats")
def stats_group() -> None:
    """Campaign statistics: check them against the bookings, rebuild the stored days."""


@stats_group.command("check")
@click.option("--from", "start", default=None, help="first day, YYYY-MM-DD (default: all)")
@click.option("--to", "end", default=None, help="day after the last, YYYY-MM-DD")
def stats_check_command(start: str | None, end: str | None) -> None:
    """Recount every figure from the bookings one at a time and print any difference
    from the figures the statistics show; exit 1 when there is one."""
    months = _stats_range(start, end)
    if not months:
        click.echo("No bookings: nothing to check.")
        return
    found: list[str] = []
    with click.progressbar(months, label="Months", file=None) as bar:
        for period in bar:
            found += check.differences(period)
            db.session.rollback()
    # Each company's first day of use (new SMEs) depends on all of history: checked whole.
    found += first_use.differences()
    db.session.rollback()
    for line in found:
        click.echo(line)
    if found:
        click.echo(f"{len(found)} differences.", err=True)
        raise SystemExit(1)
    click.echo(f"No differences in {len(months)} month{'' if len(months) == 1 else 's'}.")


@stats_group.command("rebuild")
@click.option("--from", "start", default=None, help="first day, YYYY-MM-DD (default: all)")
@click.option("--to", "end", default=None, help="day after the last, YYYY-MM-DD")
def stats_rebuild_command(start: str | None, end: str | None) -> None:
    """Recompute the stored daily counters (stats_daily), decision waits (stats_wait)
    and companies served and instruments used (stats_used, whole months) from the
    bookings, month by month, and every company's first day of use (stats_first_use),
    in one transaction,
    then refresh the planner statistics. Never needed for right figures (days
    the triggers marked are counted live until the rollup job cleans them); for a
    bulk load that bypassed the triggers."""
    months = _stats_range(start, end)
    if not months:
        click.echo("No bookings.")
        return
    rows = 0
    lines = []
    # One transaction: the markers a month's rebuild removes are what keeps the first
    # days of use of their companies counted live, so those are rebuilt before any
    # commit.
    with click.progressbar(months, label="Months", file=None) as bar:
        for period in bar:
            rows += stats_store.rebuild(period.start, period.end, first_days=False)
            c = total_counters(period, Scope.everything())
            lines.append(
                f"{period.label()}: {c['bookings_total']} bookings, {c['completed']} completed, "
                f"{c.usage_hours} usage hours"
            )
    first_use.rebuild()
    db.session.commit()
    rollup()
    db.session.commit()
    for line in lines:
        click.echo(line)
    click.echo(f"{rows} daily rows in {len(months)} month{'' if len(months) == 1 else 's'}.")


@click.command("search-reindex")
def search_reindex_command() -> None:
    """Rebuild the search index of every lab and instrument (after rows were loaded
    around the application, e.g. by SQL)."""
    from labshare.catalogue.search_index import rebuild

    started = time.perf_counter()
    begin_write()
    count = rebuild(db.session.connection())
    db.session.commit()
    click.echo(f"Indexed {count} resources in {time.perf_counter() - started:.1f} s.")


def register_commands(app: Flask) -> None:
    app.cli.add_command(search_reindex_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(stats_group)
    app.cli.add_command(holidays_group)


class _HolidayGroup(click.Group):
    """Refusals of the calendar's service are printed as their message, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from labshare.errors import DomainError

        try:
            return super().invoke(ctx)
        except DomainError as exc:
            db.session.rollback()
            field = f"{exc.field}: " if exc.field else ""
            raise click.ClickException(f"{field}{exc.message}") from exc


def _on_bookings_options(command: Any) -> Any:
    """``--on-bookings`` and ``--message``: what a new holiday does to the bookings on it."""
    command = click.option(
        "--message", default=None, help="to the companies whose bookings it covers"
    )(command)
    return click.option(
        "--on-bookings",
        type=click.Choice(["ask_move", "cancel"]),
        default="ask_move",
        show_default=True,
        help="bookings on a new holiday: wait for approval again and their companies asked "
        "to move them, or cancelled; either way each booker is told once, with alternatives",
    )(command)


@click.group("holidays", cls=_HolidayGroup)
def holidays_group() -> None:
    """Public holidays and make-up workdays (调休)."""


@holidays_group.command("load")
@click.argument("year", type=int)
@_on_bookings_options
def holidays_load(year: int, on_bookings: str, message: str | None) -> None:
    """Load YEAR of the national calendar: labshare/data/holidays_cn.json when it lists
    the year, else the chinese-calendar package. Days an admin entered stay."""
    from labshare.booking import holiday_admin
    from labshare.database import retrying

    loaded = retrying(
        lambda: holiday_admin.load_year(year, None, on_bookings=on_bookings, message=message),
        what="holidays load",
    )
    state = "loaded" if loaded.changed else "unchanged"
    click.echo(
        f"{year} from {loaded.source}: {loaded.holidays} holidays, "
        f"{loaded.workdays} make-up workdays ({state})."
    )
    if loaded.bookings_inside:
        ids = ", ".join(str(i) for i in loaded.bookings_inside)
        done = "cancelled" if on_bookings == "cancel" else "waiting for approval again"
        click.echo(f"Bookings made before these holidays were known, now {done}: {ids}")


@holidays_group.command("list")
@click.argument("year", type=int)
@click.option("--region", default=None, help="a province code: its extra days too")
def holidays_list(year: int, region: str | None) -> None:
    """The calendar of YEAR."""
    from labshare.booking import holiday_admin

    for row in holiday_admin.list_days(year, region):
        works = f" (hours of weekday {row.works_as})" if row.works_as is not None else ""
        click.echo(
            f"{row.id}\t{row.day.isoformat()}\t{row.region or 'national'}\t{row.kind}\t"
            f"{row.name}{works}\t{row.source}"
        )
    if holiday_admin.holidays_per_year([year])[year] == 0:
        click.echo(_no_holidays_warning(year), err=True)


def _no_holidays_warning(year: int) -> str:
    return (
        f"Warning: No public holidays are loaded for {year}: labs that follow the calendar "
        f"stay open on them. Run `flask holidays load {year}`, or add the State Council's "
        "notice to labshare/data/holidays_cn.json first."
    )


@holidays_group.command("check")
def holidays_check() -> None:
    """Exit 1 when this year or the next has no public holidays loaded (for a monitor)."""
    from labshare.booking import holiday_admin

    missing = holiday_admin.uncovered_years()
    for year in missing:
        click.echo(_no_holidays_warning(year), err=True)
    if missing:
        raise SystemExit(1)
    click.echo("This year and the next have public holidays loaded.")


@holidays_group.command("add")
@click.argument("day")
@click.option("--kind", required=True, type=click.Choice(["holiday", "workday"]))
@click.option("--name", required=True, help="e.g. 国庆节")
@click.option("--name-en", default=None)
@click.option("--works-as", default=None, type=int, help="workday: 0 (Monday) to 6 (Sunday)")
@click.option("--region", default=None, help="a 6-digit province code; absent: national")
@_on_bookings_options
def holidays_add(
    day: str,
    kind: str,
    name: str,
    name_en: str | None,
    works_as: int | None,
    region: str | None,
    on_bookings: str,
    message: str | None,
) -> None:
    """Add DAY (YYYY-MM-DD) to the calendar, or replace it."""
    from labshare.booking import holiday_admin
    from labshare.database import retrying

    def add() -> tuple[str, list[int]]:
        added = holiday_admin.add_day(
            None,
            day=day,
            kind=kind,
            name=name,
            name_en=name_en,
            works_as=works_as,
            region=region,
            on_bookings=on_bookings,
            message=message,
        )
        row = added.row
        return f"{row.id}\t{row.day.isoformat()}\t{row.kind}\t{row.name}", added.bookings_inside

    line, inside = retrying(add, what="holidays add")
    click.echo(line)
    if inside:
        ids = ", ".join(str(i) for i in inside)
        done = "cancelled" if on_bookings == "cancel" else "waiting for approval again"
        click.echo(f"Bookings made before this holiday was known, now {done}: {ids}")


@holidays_group.command("remove")
@click.argument("day_id", type=int)
def holidays_remove(day_id: int) -> None:
    """Remove one day (its id, from `flask holidays list`)."""
    from labshare.booking import holiday_admin

    holiday_admin.remove_day(None, day_id)
    db.session.commit()
    click.echo(f"Removed {day_id}.")
