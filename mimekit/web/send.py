"""Compose, reply and forward from the page, and hand the message to SMTP or the queue.

The message is built by mimekit's composer (mimekit.write.composer), which refuses a header
value with CR, LF or NUL (docs/conventions.md, Safety: header injection) and encodes
non-ASCII subjects and names (RFC 2047). It is then sent as `mimekit send -t` sends a file:
its envelope is read from its own header (mimekit.transport.smtp.envelope: the sender from
From, the recipients from To, Cc and Bcc, Bcc never transmitted), through mimekit.send.send
(SMTPSender) or spooled into the outgoing queue as `send --queue` does (QueueSender).

Uploaded files are never read into memory: the composer reads them twice (a pre-scan, then
the encoding) straight from the upload's spool file. A forwarded message is attached as
message/rfc822 read from its store; the composer's rule applies (RFC 2046 §5.2.1: message/*
is 7bit only), so a message with 8-bit bytes is attached as application/octet-stream in
base64, its bytes intact.
"""

import io
import os
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterable, Iterator, Mapping, Protocol

from mimekit.errors import AuthError, UnavailableError, UsageError
from mimekit.queue import Queue
from mimekit.read.tree import parse_message
from mimekit.send import send as send_messages
from mimekit.transport.connection import DEFAULT_TIMEOUT
from mimekit.transport.smtp.client import MessageResult, OutgoingMessage, refusal
from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.urls import ServerURL
from mimekit.write import replies
from mimekit.write.composer import ComposedMessage, Content, MessageBuilder
from mimekit.write.writer import write_message

SOURCE_NAME = "composed message"      # what errors about the message call it


class Sender(Protocol):
    def send(self, message: ComposedMessage) -> str:
        """Send or queue `message`; the server's queue id (or what it said), or the queue's id."""


class SMTPSender:
    """One SMTP session per message, through mimekit.send.send as `mimekit send` does: TLS
    as the URL says (smtp+plain:// for serve's own listener on loopback), a login when the
    URL names a user, with `password()` or else the usual password look-up (never argv)."""

    def __init__(self, url: ServerURL, password: Callable[[], str] | None = None, cafile: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT):
        self.url = url
        self.password = password
        self.cafile = cafile
        self.timeout = timeout

    def send(self, message: ComposedMessage) -> str:
        """The server's queue id, or "accepted" when it names none. A refused recipient
        raises (TempFailure for 4xx, UnavailableError for 5xx) naming who got it anyway;
        a failed connection raises mimekit's error for it, a refused login UnavailableError
        (an AuthError would tell the page's user that their own login failed)."""
        try:
            with outgoing_message(message) as outgoing:
                results = list(send_messages(self.url, [outgoing], extract=True, password=self.password,
                                             cafile=self.cafile, timeout=self.timeout))
            return _delivered(results[0])
        except AuthError as exc:    # this server's login to SMTP, not the page user's: never an HTTP 401
            raise UnavailableError(f"{self.url.host}: the SMTP server refused this server's login: {exc}") from None


class QueueSender:
    """Spool into the outgoing queue (mimekit.queue) for its runner to deliver to `url`,
    retrying while the server is away: sending from the page never waits for SMTP."""

    def __init__(self, queue_dir: str, url: ServerURL, cafile: str | None = None):
        self.queue_dir = queue_dir
        self.url = url
        self.cafile = cafile

    def send(self, message: ComposedMessage) -> str:
        """The queue entry's id, once the message is durably queued."""
        with outgoing_message(message) as outgoing, Queue(self.queue_dir) as queue:
            return queue.spool(outgoing, self.url, cafile=self.cafile).id


@contextmanager
def outgoing_message(message: ComposedMessage) -> Iterator[OutgoingMessage]:
    """`message` written out (CRLF) and prepared as `send -t` prepares a file: envelope from
    its header, Bcc removed; valid until the block ends, when its file is removed. DataError
    when its header gives no usable envelope.

    The file is in a private temporary directory and read by path: given a stream instead,
    prepare_message would keep an anonymous copy of it that nothing can close."""
    with tempfile.TemporaryDirectory(prefix="mimekit-web-") as directory:
        path = os.path.join(directory, "message.eml")
        with open(path, "xb") as file:
            write_message(message, file)
        outgoing = replace(prepare_message(path, extract=True), source=SOURCE_NAME)
        if outgoing.refused:
            raise outgoing.refused
        yield outgoing


def _delivered(result: MessageResult) -> str:
    if result.error is not None:
        raise result.error
    refused = [r for r in result.recipients if not r.accepted]
    if refused:
        accepted = [r.address for r in result.recipients if r.accepted]
        text = "; ".join(f"{r.address} refused: {r.code} {r.text}".rstrip() for r in refused)
        text += f"; sent to {', '.join(accepted)}" if accepted else "; not sent"
        raise refusal(refused[0].code, text) if refused[0].code else UnavailableError(text)
    return result.queue_id or "accepted"


# -- the compose form -------------------------------------------------------------------------

def compose_from_form(fields: Mapping[str, str], files: Iterable, mail, user: str | None) -> ComposedMessage:
    """The message the compose form describes. `fields`: from (default: `user` when it is
    an address), to, cc, bcc (address lists as typed: "Name <a@b>, c@d"), subject, body,
    in_reply_to and references (msg-ids, as reply_draft fills them), forward (the id of a
    message to attach as message/rfc822). `files`: uploads (Starlette's UploadFile: filename,
    content_type, file). UsageError with no recipient or no From; DataError (from the
    composer) for a bad address or a CR/LF in any field."""
    text = {name: (fields.get(name) or "").strip() for name in
            ("from", "to", "cc", "bcc", "subject", "in_reply_to", "references", "forward")}
    sender = text["from"] or (user if user and "@" in user else "")
    if not sender:
        raise UsageError("from: give a From address")
    if not (text["to"] or text["cc"] or text["bcc"]):
        raise UsageError("no recipient: give a To or Cc address")
    builder = MessageBuilder()
    builder.add_header("From", sender)
    for name in ("To", "Cc", "Bcc"):
        if text[name.lower()]:
            builder.add_header(name, text[name.lower()])
    if text["subject"]:
        builder.add_header("Subject", text["subject"])
    if text["in_reply_to"]:
        builder.add_header("In-Reply-To", _msg_ids("in_reply_to", text["in_reply_to"]))
    if text["references"]:
        builder.add_header("References", _msg_ids("references", text["references"]))
    builder.set_body((fields.get("body") or "").encode("utf-8"))
    for upload in files:
        builder.attach(_upload_content(upload), filename=_upload_name(upload),
                       content_type=upload.content_type or None)
    if text["forward"]:
        _attach_original(builder, mail, text["forward"], user)
    return builder.build()


def _msg_ids(name: str, value: str) -> str:
    """Message ids separated by white space, as they are: anything else is refused."""
    ids = value.split()
    if not all(replies.MSG_ID.fullmatch(one) for one in ids):
        raise UsageError(f"{name}: expected message ids <left@right> separated by spaces")
    return " ".join(ids)


def _upload_content(upload) -> Content:
    """The upload as Content, read from its spool file each time (never whole in memory;
    asking a SpooledTemporaryFile for its descriptor moves it to disk)."""
    try:
        return Content.from_open_file(upload.file)
    except (AttributeError, OSError, io.UnsupportedOperation):    # a file object with no descriptor
        return Content.from_stream(upload.file)


def _upload_name(upload) -> str:
    """The file's own name; old browsers send a whole Windows path."""
    name = (upload.filename or "").replace("\\", "/").rpartition("/")[2]
    return name or "attachment"


def _attach_original(builder: MessageBuilder, mail, email_id: str, user: str | None) -> None:
    with mail.open(email_id, user) as stream, parse_message(stream) as original:
        name = replies.forward_attachment_name(original.root.header("subject"))
    builder.attach(Content(lambda: mail.open(email_id, user)), filename=name, content_type="message/rfc822")


# -- reply and forward: mimekit.write.replies derives the fields, as `encode --reply` does ------

def reply_draft(mail, email_id: str, user: str | None, all: bool = False) -> dict:
    """The compose form's fields for a reply to message `email_id` (replies.reply): to,
    with `all` cc (but the user), subject, its text quoted under an attribution line below
    room for the user's text, in_reply_to and references."""
    with mail.open(email_id, user) as stream, parse_message(stream) as original:
        answer = replies.reply(original, all, own=[user] if user and "@" in user else [])
    return {"to": replies.typed(answer.to), "cc": replies.typed(answer.cc), "subject": answer.subject,
            "body": f"\n\n{answer.quote}", "in_reply_to": answer.in_reply_to or "",
            "references": " ".join(answer.references), "forward": ""}


def forward_draft(mail, email_id: str, user: str | None) -> dict:
    """The compose form's fields for forwarding message `email_id`: no recipient yet,
    subject "Fwd: ..." (one Fwd), and forward=the id: the original goes as an attachment."""
    with mail.open(email_id, user) as stream, parse_message(stream) as original:
        subject = replies.forward_subject(original.root.header("subject"))
    return {"to": "", "cc": "", "subject": subject, "body": "",
            "in_reply_to": "", "references": "", "forward": email_id}
