"""The JSON API: mailboxes, messages and sending, with JMAP Mail's names (RFC 8621), for
tests and scripts. Documented in openapi.json beside this file (served at /api/openapi.json).

The handlers are thin: they read the request's parameters, call WebMail, messages and send
in a thread (every one of those blocks on disk, SQLite or SMTP) and answer JSON. Errors are
raised as mimekit's (UsageError 400, NoInputError 404, ReadOnlyError 403) and answered by
app.py's one map, as {"error", "status"}. The live updates (/api/events) are events.py's.

Bytes from a message (raw, parts, cid: images) are streamed in chunks, so a 1 GB attachment
downloads in bounded memory, and each such response is sandboxed by its own CSP, so that
opened alone in a browser it can run nothing."""

import json
import os
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mimekit.errors import NoInputError, UsageError
from mimekit.web import forms, messages, security, send
from mimekit.web.folders import INBOX
from mimekit.web.mail import ReadOnlyError, WebMail
from mimekit.web.model import FLAG_OF_KEYWORD, Folder, Query

OPENAPI = os.path.join(os.path.dirname(__file__), "openapi.json")

MAX_INTEGER = 2**63 - 1                  # SQLite's largest: a position past it is refused, not a crash
CHUNK = 64 * 1024                        # bytes read from a message file per streamed chunk
MAX_JSON_BODY = 1024 * 1024              # a PATCH or a JSON send is small; past this: 400
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# A response made of a message's bytes: opened on its own it is a sandboxed document that
# loads nothing (docs: common brief, "Every response made from message bytes").
MESSAGE_BYTES_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'",
                         "X-Content-Type-Options": "nosniff"}
# The JSON send's fields and the form field each becomes (send.compose_from_form's names).
FORM_FIELD_OF_JSON = {"to": "to", "cc": "cc", "bcc": "bcc", "subject": "subject", "textBody": "body", "body": "body",
                      "from": "from", "inReplyTo": "in_reply_to", "references": "references",
                      "forward": "forward"}


def _mail(request: Request) -> WebMail:
    return request.app.state.mail


def _integer(request: Request, name: str, default: int) -> int:
    """A query parameter as an integer: ASCII digits up to MAX_INTEGER, a sign allowed so
    that a negative number reaches WebMail's range check and gets its message."""
    value = request.query_params.get(name)
    if value is None:
        return default
    digits = value.removeprefix("-")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 20):
        raise UsageError(f"{name}: expected a whole number, got {value!r}")
    if int(value) > MAX_INTEGER:
        raise UsageError(f"{name}: at most {MAX_INTEGER}")
    return int(value)


async def _json_body(request: Request) -> dict:
    """The request's JSON object, read up to MAX_JSON_BODY bytes; UsageError (400) otherwise."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise UsageError(f"request body: more than {MAX_JSON_BODY} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"request body: not JSON: {exc}") from None
    except RecursionError:        # [[[[... nested past the parser's depth
        raise UsageError("request body: JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise UsageError("request body: expected a JSON object")
    return document


async def session(request: Request) -> Response:
    config = request.app.state.config
    return JSONResponse({"csrfToken": security.csrf_token(request), "user": security.user_of(request),
                         "readOnly": not config.writable, "canSend": config.sender is not None})


async def openapi(request: Request) -> Response:
    return FileResponse(OPENAPI, media_type="application/json")


async def mailboxes(request: Request) -> Response:
    """The folders this user sees, as JMAP Mailbox objects with their counts."""
    mail, user = _mail(request), security.user_of(request)

    def listed() -> list[dict]:
        return [_mailbox(folder, *mail.counts(folder.id)) for folder in mail.visible_folders(user)]

    await _look_for_new_mail(request)
    return JSONResponse({"mailboxes": await run_in_threadpool(listed)})


async def _look_for_new_mail(request: Request) -> None:
    """A message delivered a moment ago is listed without waiting for the watcher's next
    look; through the watcher, so that what this look finds reaches the live updates too."""
    await request.app.state.watcher.refresh()


def _mailbox(folder: Folder, total: int, unread: int) -> dict:
    return {"id": folder.id, "name": folder.name, "role": "inbox" if folder.name == INBOX else None,
            "totalEmails": total, "unreadEmails": unread,
            "myRights": {"maySetKeywords": folder.writable, "mayRemoveItems": folder.writable}}


async def list_messages(request: Request) -> Response:
    """A page of a folder's messages, newest first, optionally searched (model.Query's language)."""
    mail, user = _mail(request), security.user_of(request)
    query = Query.parse(request.query_params.get("q", ""))
    position = _integer(request, "position", 0)
    limit = _integer(request, "limit", request.app.state.config.page_size)
    mailbox_id = request.query_params.get("mailbox")

    def searched():
        folder_id = mailbox_id if mailbox_id is not None else _first_folder(mail, user)
        return folder_id, mail.search(folder_id, query, position, limit, user)

    await _look_for_new_mail(request)
    folder_id, page = await run_in_threadpool(searched)
    return JSONResponse({"mailboxId": folder_id, "total": page.total, "position": page.position,
                         "limit": limit, "emails": [email.as_jmap() for email in page.emails]})


def _first_folder(mail: WebMail, user: str | None) -> str:
    visible = mail.visible_folders(user)
    if not visible:
        raise NoInputError("no folder to list")
    return visible[0].id


async def get_message(request: Request) -> Response:
    """The message in full: headers, body structure, text bodies, defects (messages.details)."""
    mail, user, email_id = _mail(request), security.user_of(request), request.path_params["id"]

    def detailed() -> dict:
        return messages.details(mail, mail.email(email_id, user), user)

    return JSONResponse(await run_in_threadpool(detailed))


async def check_message(request: Request) -> Response:
    """The strict checker's verdict, as `check --json` prints it."""
    mail, user, email_id = _mail(request), security.user_of(request), request.path_params["id"]
    return JSONResponse(await run_in_threadpool(messages.check, mail, email_id, user))


async def raw_message(request: Request) -> Response:
    """The message as stored, streamed; opened before the response starts, so a bad id is a 404."""
    mail, user, email_id = _mail(request), security.user_of(request), request.path_params["id"]
    file = await run_in_threadpool(mail.open, email_id, user)
    # Closed after the response too: a client gone before the first chunk never runs the
    # generator, whose own close is then never reached.
    return StreamingResponse(_chunks_of(file), media_type="message/rfc822", background=BackgroundTask(file.close),
                             headers={**MESSAGE_BYTES_HEADERS,
                                      "Content-Disposition": messages.content_disposition(f"{email_id}.eml")})


def _chunks_of(file: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := file.read(CHUNK):
            yield chunk
    finally:
        file.close()


async def message_part(request: Request) -> Response:
    """A part's decoded bytes as a download; a safe image keeps its type, anything else is
    application/octet-stream so that no browser renders it."""
    mail, user, email_id = _mail(request), security.user_of(request), request.path_params["id"]
    download, chunks = await run_in_threadpool(messages.open_part, mail, email_id, request.path_params["partId"], user)
    content_type = _media_type(download.content_type)
    return _streamed(chunks, content_type if content_type in INLINE_IMAGE_TYPES else "application/octet-stream",
                     messages.content_disposition(download.filename), download.size)


async def message_cid(request: Request) -> Response:
    """The part a `cid:` URL of the HTML body names: a safe image inline, anything else as a
    download (an HTML or SVG part must never be a document of this origin)."""
    mail, user, email_id, cid = _mail(request), security.user_of(request), request.path_params["id"], request.path_params["cid"]
    download, chunks = await run_in_threadpool(messages.open_cid, mail, email_id, cid, user)
    content_type = _media_type(download.content_type)
    if content_type in INLINE_IMAGE_TYPES:
        return _streamed(chunks, content_type, "inline", download.size)
    return _streamed(chunks, "application/octet-stream", messages.content_disposition(download.filename), download.size)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _streamed(chunks: Iterator[bytes], content_type: str, disposition: str, size: int | None) -> Response:
    headers = {**MESSAGE_BYTES_HEADERS, "Content-Disposition": disposition}
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=content_type, headers=headers)


async def update_message(request: Request) -> Response:
    """JMAP's keyword patch: {"keywords": {"$seen": true, "$flagged": false}} sets or clears
    the Maildir flags; the message as now indexed."""
    security.check_csrf(request, None)
    mail, user, email_id = _mail(request), security.user_of(request), request.path_params["id"]
    add, remove = _flag_changes(await _json_body(request))
    email = await run_in_threadpool(mail.set_flags, email_id, add, remove, user)
    await request.app.state.watcher.notify([email.folder_id])
    return JSONResponse(email.as_jmap())


def _flag_changes(patch: dict) -> tuple[str, str]:
    """(flags to add, flags to remove) of a PATCH body; UsageError for anything else in it."""
    unknown = set(patch) - {"keywords"}
    if unknown:
        raise UsageError(f"cannot change {', '.join(sorted(unknown))}: only keywords")
    changes = patch.get("keywords")
    if not isinstance(changes, dict):
        raise UsageError('keywords: expected an object such as {"$seen": true}')
    add = remove = ""
    for keyword, wanted in changes.items():
        if keyword not in FLAG_OF_KEYWORD:
            raise UsageError(f"keyword {keyword!r}: expected one of {', '.join(FLAG_OF_KEYWORD)}")
        if not isinstance(wanted, bool):
            raise UsageError(f"keyword {keyword!r}: expected true or false")
        if wanted:
            add += FLAG_OF_KEYWORD[keyword]
        else:
            remove += FLAG_OF_KEYWORD[keyword]
    return add, remove


async def delete_message(request: Request) -> Response:
    security.check_csrf(request, None)
    mail, user, email_id = _mail(request), security.user_of(request), request.path_params["id"]
    folder_id = (await run_in_threadpool(mail.email, email_id, user)).folder_id
    await run_in_threadpool(mail.delete, email_id, user)
    await request.app.state.watcher.notify([folder_id])
    return Response(status_code=204)


async def send_message(request: Request) -> Response:
    """Compose (send.compose_from_form) and hand to the configured sender: SMTP or the queue.
    A multipart form (to, cc, subject, body, attachment files) or a JSON object
    ({"from", "to": [...], "cc": [...], "subject", "textBody", "inReplyTo": ["<msg-id>"],
    "forward": email id})."""
    sender = request.app.state.config.sender
    if sender is None:
        raise ReadOnlyError("this server has no way to send (no SMTP target or queue)")
    mail, user = _mail(request), security.user_of(request)

    def sent(fields: dict[str, str], files: list[UploadFile]) -> Response:
        queued = sender.send(send.compose_from_form(fields, files, mail, user))
        return JSONResponse({"id": queued}, status_code=202)

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        security.check_csrf(request, None)
        return await run_in_threadpool(sent, _fields_of_json(await _json_body(request)), [])
    async with forms.read_form(request, forms.SEND) as form:     # the uploads' spool files are closed at its end
        fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        security.check_csrf(request, fields.get(security.CSRF_FIELD))
        return await run_in_threadpool(sent, fields, forms.attachments(form))


def _fields_of_json(document: Mapping) -> dict[str, str]:
    """The JSON send's properties as the form's fields: address lists joined with ", "."""
    fields: dict[str, str] = {}
    for name, value in document.items():
        if name not in FORM_FIELD_OF_JSON:
            raise UsageError(f"{name!r}: expected one of {', '.join(FORM_FIELD_OF_JSON)}")
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            value = ", ".join(value) if name in ("to", "cc", "bcc") else " ".join(value)
        if not isinstance(value, str):
            raise UsageError(f"{name!r}: expected a string or a list of strings")
        fields[FORM_FIELD_OF_JSON[name]] = value
    return fields


routes = [
    Route("/api/session", session, methods=["GET"]),
    Route("/api/openapi.json", openapi, methods=["GET"]),
    Route("/api/mailboxes", mailboxes, methods=["GET"]),
    Route("/api/messages", list_messages, methods=["GET"]),
    Route("/api/messages/{id}", get_message, methods=["GET"]),
    Route("/api/messages/{id}", update_message, methods=["PATCH"]),
    Route("/api/messages/{id}", delete_message, methods=["DELETE"]),
    Route("/api/messages/{id}/raw", raw_message, methods=["GET"]),
    Route("/api/messages/{id}/check", check_message, methods=["GET"]),
    Route("/api/messages/{id}/parts/{partId}", message_part, methods=["GET"]),
    Route("/api/messages/{id}/cid/{cid:path}", message_cid, methods=["GET"]),
    Route("/api/send", send_message, methods=["POST"]),
]
