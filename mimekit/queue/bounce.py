"""Failure reports: a delivery status notification for an entry that leaves the queue with
failed recipients, written into a local mailbox.

The report has RFC 3464's structure, in an RFC 6522 multipart/report composed by
mimekit.write.composer:

    multipart/report; report-type=delivery-status
      text/plain                  what happened, for a person
      message/delivery-status     Reporting-MTA, Arrival-Date; then per failed recipient
                                  Final-Recipient, Action: failed, Status, Remote-MTA,
                                  Diagnostic-Code, Last-Attempt-Date
      text/rfc822-headers         the original message's header

Status is the server's enhanced code when it is a 5.x.y one, else 5.0.0 for a 5xx reply,
5.4.7 (delivery time expired, RFC 3463) for a recipient given up while its last reply
was a 4xx, and 5.0.0 when no server replied. Only recipients that failed are reported.
"""

import datetime
import re
import socket

from mimekit.headers.dates import format_date
from mimekit.headers.folding import fold_header
from mimekit.queue.store import FAILED, Entry, LockedEntry, RecipientState
from mimekit.write.composer import ComposedMessage, MessageBuilder
from mimekit.write.writer import message_bytes

REPORT_TYPE = "delivery-status"
HEADERS_LIMIT = 1 << 20           # bytes of the original header kept (Limits.DEFAULT's header block)
EXPIRED_STATUS = "5.4.7"          # RFC 3463: delivery time expired
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_END = re.compile(rb"(?:^|\n)\r?\n")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def write_bounce(mailbox, locked: LockedEntry, reporting_mta: str | None = None) -> str:
    """Add the failure report of `locked`'s entry to `mailbox` (a mimekit.stores Mailbox:
    atomic and durable) and return where it went."""
    report = failure_report(locked.entry, original_headers(locked.chunks()), reporting_mta or socket.gethostname())
    return mailbox.add([message_bytes(report)])


def failure_report(entry: Entry, headers: bytes, reporting_mta: str) -> ComposedMessage:
    """The report of `entry`'s failed recipients, `headers` being its message's header block."""
    failed = [r for r in entry.recipients if r.state == FAILED]
    host = reporting_mta if _DOT_ATOM.fullmatch(reporting_mta) else "localhost"
    builder = MessageBuilder()
    builder.add_header("From", f"Mail Delivery System <MAILER-DAEMON@{host}>")
    if entry.sender:
        builder.add_header("To", entry.sender)
    builder.add_header("Subject", "Undelivered Mail Returned to Sender")
    builder.add_header("Auto-Submitted", "auto-replied")   # RFC 3834: no auto-reply to this
    builder.set_body(_explanation(entry, failed, reporting_mta).encode())
    return builder.build_report(REPORT_TYPE, [(_delivery_status(entry, failed, reporting_mta), "message/delivery-status"),
                                              (headers, "text/rfc822-headers")])


def original_headers(chunks) -> bytes:
    """The message's header block (fields only, without the blank line after it), cut at a
    line end after HEADERS_LIMIT bytes."""
    data = b""
    for chunk in chunks:
        data += chunk
        if _HEADER_END.search(data) or len(data) > HEADERS_LIMIT:
            break
    end = _HEADER_END.search(data)
    if end:
        return data[:end.start() + (end.group().startswith(b"\n"))]
    data = data[:HEADERS_LIMIT]
    return data[:data.rfind(b"\n") + 1]


def recipient_status(recipient: RecipientState) -> str:
    """The RFC 3464 Status of a failed recipient (see the module docstring)."""
    reply = recipient.last_reply or {}
    code, enhanced = reply.get("code"), reply.get("enhanced")
    if code is not None and code >= 500:
        return enhanced if enhanced and enhanced.startswith("5.") else "5.0.0"
    return EXPIRED_STATUS if code is not None else "5.0.0"


def _explanation(entry: Entry, failed: list[RecipientState], reporting_mta: str) -> str:
    lines = [f"This is the mail queue of mimekit on {reporting_mta}.", "",
             f"Your message (queue entry {entry.id}) could not be delivered to the recipients",
             "below; it was given up for them. Their server's replies follow.", ""]
    lines += [f"<{recipient.address}>: {recipient.reply_text or 'no reply'}" for recipient in failed]
    delivered = len(entry.recipients) - len(failed)
    if delivered:
        lines += ["", f"It was delivered to {delivered} other recipient(s)."]
    lines += ["", "The header of your message is attached."]
    return "\r\n".join(lines) + "\r\n"


def _delivery_status(entry: Entry, failed: list[RecipientState], reporting_mta: str) -> bytes:
    """The message/delivery-status body: per-message fields, then one block per recipient."""
    blocks = [[("Reporting-MTA", f"dns; {reporting_mta}"), ("Arrival-Date", _date(entry.created))]]
    for recipient in failed:
        reply = recipient.last_reply or {}
        fields = [("Final-Recipient", f"rfc822; {recipient.address}"), ("Action", "failed"),
                  ("Status", recipient_status(recipient))]
        if reply.get("code") is not None:   # a server answered: the relay, or an mx: entry's exchanger
            remote = (recipient.transfer or {}).get("exchanger") or entry.url.host
            fields += [("Remote-MTA", f"dns; {remote}"), ("Diagnostic-Code", f"smtp; {recipient.reply_text}")]
        if recipient.updated is not None:
            fields.append(("Last-Attempt-Date", _date(recipient.updated)))
        blocks.append(fields)
    return b"\r\n".join(b"".join(fold_header(name, _ascii(value)) for name, value in block) for block in blocks)


def _ascii(text: str) -> str:
    """message/delivery-status is 7-bit: controls become spaces, the rest non-ASCII escapes."""
    return _UNSAFE.sub(" ", text).encode("ascii", "backslashreplace").decode("ascii")


def _date(epoch: float) -> str:
    return format_date(datetime.datetime.fromtimestamp(epoch).astimezone())
