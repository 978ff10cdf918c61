"""Delivery of the outbox by SMTP, at most once per row as far as we can know.

The sender works in three short steps, each its own transaction:

1. **claim**: pending rows that are due are switched to ``sending`` (PostgreSQL:
   ``SELECT ... FOR UPDATE SKIP LOCKED``, so two senders take disjoint rows; SQLite:
   a ``BEGIN IMMEDIATE`` single writer). ``attempts`` counts up and
   ``next_attempt_at`` becomes the claim's lease deadline.
2. **send**, outside any transaction, with the stable ``Message-ID``
   ``<notification-ID@labshare>``.
3. **mark**: ``sent``; or back to ``pending`` with exponential backoff and jitter
   (4xx, connection refused, time-outs) until ``MAIL_MAX_ATTEMPTS``, then ``failed``;
   or ``failed`` at once (5xx).

A crash between 2 and 3 leaves a row ``sending``. When its lease has run out a
later run marks it ``uncertain`` instead of sending it again: the mail server may or
may not have accepted it. ``undelivered`` lists those and the failed rows for admins.

Without ``MAIL_SERVER`` (the embedded default) messages are logged and marked sent;
they stay visible as in-app notifications.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update

from labshare.accounts import invitations
from labshare.database import begin_write
from labshare.errors import InvalidTransition, NotAllowed
from labshare.extensions import db
from labshare.messaging import notify, staff_notices
from labshare.models import Booking, Notification, NotificationStatus, Role, User
from labshare.ops import audit
from labshare.timeutil import utcnow

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_SECONDS = 60
DEFAULT_BACKOFF_CAP_SECONDS = 6 * 3600
DEFAULT_LEASE_SECONDS = 15 * 60
DEFAULT_BATCH = 20
SMTP_TIMEOUT_SECONDS = 20


def message_id(notification_id: int) -> str:
    return f"<notification-{notification_id}@labshare>"


def _setting(name: str, default: Any) -> Any:
    value = current_app.config.get(name)
    return default if value is None else value


# --- building the message ------------------------------------------------------------


def _attachments(note: Notification) -> list[tuple[bytes, str, str, str]]:
    """(content, maintype, subtype, filename) for a row, rebuilt at send time so the
    outbox stores no blobs: the reminder's .ics and the monthly export's CSV."""
    if note.kind == notify.REMINDER_KIND and note.booking_id is not None:
        booking = db.session.get(Booking, note.booking_id)
        if booking is not None:
            return [(notify.booking_ics(booking), "text", "calendar", f"booking-{booking.id}.ics")]
    if note.kind == staff_notices.MONTHLY_EXPORT_KIND:
        month = note.dedupe_key.split(":")[1]
        path = Path(current_app.config["INSTANCE_DIR"]) / "exports" / f"usage-{month}.csv"
        if path.exists():
            return [(path.read_bytes(), "text", "csv", path.name)]
    return []


#: Every character Python's e-mail package treats as a line break in a header value
#: (str.splitlines: CR, LF, VT, FF, FS, GS, RS, NEL, LS, PS): it refuses such a value,
#: and a header must never be split into a second one.
_HEADER_BREAKS = dict.fromkeys(map(ord, "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"), " ")


def header_value(text: str) -> str:
    """``text`` made safe for one header line: each line break becomes a space."""
    return " ".join(str(text).translate(_HEADER_BREAKS).split())


def build_message(note: Notification, user: User) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = message_id(note.id)
    msg["Date"] = format_datetime(note.created_at)
    msg["From"] = header_value(current_app.config["MAIL_DEFAULT_SENDER"])
    msg["To"] = header_value(note.to_email or user.email)  # to_email: an invitation
    msg["Subject"] = header_value(note.subject)
    msg["Auto-Submitted"] = "auto-generated"
    body_text, body_html = note.body_text, note.body_html
    if note.kind == invitations.INVITATION_KIND:
        # The invitation link is put in only now: the outbox row never holds it.
        link = invitations.invitation_link_for(note.dedupe_key) or ""
        body_text = body_text.replace(invitations.LINK_PLACEHOLDER, link)
        body_html = (body_html or "").replace(invitations.LINK_PLACEHOLDER, link) or None
    msg.set_content(body_text)
    if body_html:
        msg.add_alternative(body_html, subtype="html")
    for content, maintype, subtype, filename in _attachments(note):
        if maintype == "text":
            params = {"method": "PUBLISH"} if subtype == "calendar" else {}
            msg.add_attachment(
                content.decode("utf-8"),
                subtype=subtype,
                filename=filename,
                params=params,
            )
        else:
            msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg


# --- transports ----------------------------------------------------------------------


class Transport(Protocol):
    def send(self, msg: EmailMessage) -> None: ...

    def close(self) -> None: ...


class LogTransport:
    """The embedded default: the message goes to the log (and stays in-app)."""

    def send(self, msg: EmailMessage) -> None:
        log.info(
            "mail not sent (MAIL_SERVER unset): %s to %s: %s",
            msg["Message-ID"],
            msg["To"],
            msg["Subject"],
        )

    def close(self) -> None:
        pass


class SmtpTransport:
    """One SMTP connection for a batch, opened on the first message."""

    def __init__(self) -> None:
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        cfg = current_app.config
        host, port = cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"])
        smtp: smtplib.SMTP
        if cfg.get("MAIL_USE_SSL"):
            smtp = smtplib.SMTP_SSL(
                host, port, timeout=SMTP_TIMEOUT_SECONDS, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
            if cfg.get("MAIL_USE_TLS"):
                smtp.starttls(context=ssl.create_default_context())
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg.get("MAIL_PASSWORD") or "")
        return smtp

    def send(self, msg: EmailMessage) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        self._smtp.send_message(msg)

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def make_transport() -> Transport:
    if current_app.config.get("MAIL_SERVER"):
        return SmtpTransport()
    return LogTransport()


# --- classifying failures ------------------------------------------------------------


class Temporary(Exception):
    """Try again later. ``connection`` means the server itself is unusable now."""

    def __init__(self, reason: str, *, connection: bool) -> None:
        super().__init__(reason)
        self.connection = connection


class Permanent(Exception):
    pass


def _classify(exc: BaseException) -> Exception:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        code = codes[0] if codes else 550
        reason = f"recipient refused: {exc.recipients}"
        return Permanent(reason) if code >= 500 else Temporary(reason, connection=False)
    if isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPHeloError):
        return Temporary(f"{exc.smtp_code} {exc.smtp_error!r}", connection=True)
    if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError):
        # Our configuration or the server's, not this message's fault: keep it.
        return Temporary(f"login failed: {exc}", connection=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        reason = f"{exc.smtp_code} {exc.smtp_error!r}"
        if 400 <= exc.smtp_code < 500:
            return Temporary(reason, connection=exc.smtp_code == 421)
        return Permanent(reason)
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
        return Temporary(f"connection: {exc}", connection=True)
    return Temporary(f"{type(exc).__name__}: {exc}", connection=True)


def backoff(attempts: int) -> dt.timedelta:
    """Exponential backoff with jitter: about 1, 2, 4, ... minutes, at most 6 hours."""
    base = float(_setting("MAIL_BACKOFF_SECONDS", DEFAULT_BACKOFF_SECONDS))
    cap = float(_setting("MAIL_BACKOFF_CAP_SECONDS", DEFAULT_BACKOFF_CAP_SECONDS))
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    jitter = random.uniform(0.75, 1.25)  # noqa: S311 - spreading retries, not security
    return dt.timedelta(seconds=delay * jitter)


# --- the three steps -----------------------------------------------------------------


def recover_stale_claims() -> int:
    """Rows still ``sending`` after their lease: a sender crashed mid-send. Whether
    the server accepted the mail is unknown, so mark them ``uncertain`` for an admin
    rather than send again. Commits."""
    begin_write()
    result = db.session.execute(
        update(Notification)
        .where(
            Notification.status == NotificationStatus.SENDING,
            Notification.next_attempt_at < utcnow(),
        )
        .values(
            status=NotificationStatus.UNCERTAIN,
            last_error="sender stopped during delivery; the mail may or may not have been sent",
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("%d outbox rows found mid-send are now marked uncertain", count)
    return count


def claim(batch: int) -> list[int]:
    """Switch up to ``batch`` due rows to ``sending`` and return their ids. Commits."""
    now = utcnow()
    lease = dt.timedelta(seconds=int(_setting("MAIL_CLAIM_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)))
    begin_write()
    ids = list(
        db.session.scalars(
            select(Notification.id)
            .where(
                Notification.status == NotificationStatus.PENDING,
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        db.session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), Notification.status == NotificationStatus.PENDING)
            .values(
                status=NotificationStatus.SENDING,
                attempts=Notification.attempts + 1,
                next_attempt_at=now + lease,
            )
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return ids


def _mark(note_id: int, **values: Any) -> None:
    begin_write()
    db.session.execute(
        update(Notification)
        .where(
            Notification.id == note_id,
            Notification.status.in_([NotificationStatus.SENDING, NotificationStatus.UNCERTAIN]),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _drop(note_id: int) -> None:
    begin_write()
    db.session.execute(
        delete(Notification)
        .where(Notification.id == note_id, Notification.status == NotificationStatus.SENDING)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _mark_retry(note_id: int, attempts: int, reason: str) -> str:
    if attempts >= int(_setting("MAIL_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)):
        _mark(note_id, status=NotificationStatus.FAILED, last_error=reason[:500])
        return "failed"
    _mark(
        note_id,
        status=NotificationStatus.PENDING,
        next_attempt_at=utcnow() + backoff(attempts),
        last_error=reason[:500],
    )
    return "retried"


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    dropped: int = 0  # reminders that no longer applied
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        out = {
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "uncertain": self.uncertain,
        }
        if self.dropped:
            out["dropped"] = self.dropped
        return out


def _count(report: DeliveryReport, outcome: str) -> None:
    setattr(report, outcome, getattr(report, outcome) + 1)


def deliver_pending(*, batch: int = DEFAULT_BATCH, max_batches: int = 50) -> DeliveryReport:
    """Deliver due outbox rows. Safe to run in several processes at once."""
    report = DeliveryReport()
    report.uncertain = recover_stale_claims()
    for _ in range(max_batches):
        ids = claim(batch)
        if not ids:
            break
        _deliver_claimed(ids, report)
        if len(ids) < batch:
            break
    return report


def _deliver_claimed(ids: list[int], report: DeliveryReport) -> None:
    transport = make_transport()
    try:
        for position, note_id in enumerate(ids):
            note = db.session.get(Notification, note_id, populate_existing=True)
            if note is None:  # deleted with its user meanwhile
                continue
            user = db.session.get(User, note.user_id)
            if user is None or not user.active:
                _mark(note_id, status=NotificationStatus.FAILED, last_error="account inactive")
                report.failed += 1
                continue
            if note.kind == notify.REMINDER_KIND:
                # a fresh snapshot (SQLite keeps one per transaction): the check and
                # the message read the booking as it is now, not as it was when the
                # row was read above
                db.session.rollback()
                if not notify.reminder_applies(note_id, utcnow()):
                    # queued before its booking moved, was cancelled or began: not sent
                    _drop(note_id)
                    report.dropped += 1
                    continue
            attempts = note.attempts
            try:
                msg = build_message(note, user)
            except Exception as exc:  # this message fails, never the batch
                db.session.rollback()
                log.exception("notification %s cannot be built", note_id)
                reason = f"cannot build the message: {type(exc).__name__}: {exc}"
                _mark(note_id, status=NotificationStatus.FAILED, last_error=reason[:500])
                report.errors.append(reason)
                report.failed += 1
                continue
            db.session.rollback()  # end the read transaction before talking to the server
            try:
                transport.send(msg)
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                failure = _classify(exc)
                report.errors.append(str(failure))
                if isinstance(failure, Permanent):
                    _mark(note_id, status=NotificationStatus.FAILED, last_error=str(failure)[:500])
                    report.failed += 1
                    continue
                assert isinstance(failure, Temporary)
                _count(report, _mark_retry(note_id, attempts, str(failure)))
                if failure.connection:
                    # The server is unusable now: put the rest of the batch back as well.
                    for rest_id in ids[position + 1 :]:
                        rest = db.session.get(Notification, rest_id, populate_existing=True)
                        rest_attempts = rest.attempts if rest is not None else 1
                        db.session.rollback()
                        _count(report, _mark_retry(rest_id, rest_attempts, str(failure)))
                    return
                continue
            _mark(
                note_id,
                status=NotificationStatus.SENT,
                sent_at=utcnow(),
                message_id=message_id(note_id),
                last_error=None,
            )
            report.sent += 1
    finally:
        transport.close()


_UNDELIVERED = (NotificationStatus.FAILED, NotificationStatus.UNCERTAIN)


def undelivered(limit: int = 200) -> list[Notification]:
    """Failed and uncertain rows, newest first: what an admin must look at."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.status.in_(_UNDELIVERED))
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


# -- what an admin does with an undelivered message ----------------------------------------


def _admin_move(
    note: Notification, actor: User, to: NotificationStatus, action: str, **values: Any
) -> None:
    """Move a failed or uncertain row by a conditional UPDATE (a sender or another
    admin acting at the same moment finds nothing to change), audited."""
    if actor.role != Role.ADMIN:
        raise NotAllowed(_l("Only administrators can do this."))
    before = NotificationStatus(note.status)
    result = db.session.execute(
        update(Notification)
        .where(Notification.id == note.id, Notification.status.in_(_UNDELIVERED))
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(note)
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        raise InvalidTransition(
            _l(
                "Only a failed or uncertain message can be handled here; this one is %(s)s.",
                s=str(note.status),
            )
        )
    audit.record(action, note, actor=actor, from_state=before, to_state=to)


def requeue(note: Notification, actor: User) -> None:
    """failed/uncertain -> pending, due now, with a fresh count of attempts. For an
    uncertain row the admin accepts that the recipient may get it twice."""
    _admin_move(
        note,
        actor,
        NotificationStatus.PENDING,
        "mail.requeue",
        attempts=0,
        next_attempt_at=utcnow(),
    )


def mark_delivered(note: Notification, actor: User) -> None:
    """uncertain/failed -> sent, when the admin has confirmed delivery otherwise
    (the mail server's log, the recipient)."""
    _admin_move(note, actor, NotificationStatus.SENT, "mail.mark_sent", sent_at=utcnow())
