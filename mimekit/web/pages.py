"""The HTML pages: the folder list, a message, its checker's verdict, compose, and the forms
that delete a message or change its flags.

Every value from a message reaches a page through a Jinja2 template with autoescaping on,
never as markup; a message's HTML body is the one exception, and it is shown only inside a
sandboxed iframe (no script, no same origin) from its own URL, made safe by html_body and
under html_body's Content-Security-Policy. A GET never changes anything: opening a message
does not mark it read, the page has a button for that, behind the CSRF token.

The pages work without JavaScript; /static/app.js adds live updates only.
"""

import math
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from mimekit.defects import Defect
from mimekit.errors import DataError, MimekitError, NoInputError, UsageError
from mimekit.read.check import Violation
from mimekit.sizes import human_size
from mimekit.web import forms, html_body, messages, security, send
from mimekit.web.mail import ReadOnlyError
from mimekit.web.model import Folder, Query

SEARCH_HINT = 'from:alice to:bob subject:"two words" after:2024-01-01 before:2024-02-01 has:attachment is:unread'


# -- rendering -------------------------------------------------------------------------

def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    """`template` rendered with what every page shows (the session, the folder list when
    given as `folders`, the helpers for sizes and dates)."""
    config = request.app.state.config
    page = request.app.state.templates.get_template(template).render(
        user=security.user_of(request), can_send=config.sender is not None,
        human_size=human_size, short_date=short_date, search_hint=SEARCH_HINT, **context)
    return HTMLResponse(page, status_code=status)


def error_page(request: Request, status: int, text: str) -> HTMLResponse:
    """The page of an error: its status and one line of why (the app's error handlers)."""
    return render(request, "error.html", status=status, status_code=status, text=text)


async def render_with_folders(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    """A page with the folder column: each folder the user may read with its counts."""
    mail = request.app.state.mail
    folders = await run_in_threadpool(_folders_with_counts, mail, security.user_of(request))
    return render(request, template, status, folders=folders, csrf=security.csrf_token(request), **context)


def _folders_with_counts(mail, user: str | None) -> list[dict]:
    rows = []
    for folder in mail.visible_folders(user):
        total, unread = mail.counts(folder.id)
        rows.append({"folder": folder, "total": total, "unread": unread})
    return rows


def short_date(seconds: float | None) -> str:
    """"2024-05-01 10:00" in UTC, as the list shows a message's date."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M")


# -- the folder list ----------------------------------------------------------------------

async def home(request: Request) -> Response:
    """GET /: the first folder this user may read."""
    folders = request.app.state.mail.visible_folders(security.user_of(request))
    if not folders:
        raise NoInputError("no folder to show")
    return RedirectResponse(f"/folders/{folders[0].id}", status_code=303)


async def folder_page(request: Request) -> Response:
    """GET /folders/{folder_id}?q=&page=N: a page of the folder's messages, newest first."""
    mail = request.app.state.mail
    user = security.user_of(request)
    folder: Folder = mail.folder(request.path_params["folder_id"], user)
    page_number = _page_number(request.query_params.get("page", "1"))
    q = request.query_params.get("q", "")
    size = request.app.state.config.page_size
    try:
        query = Query.parse(q)
    except UsageError as exc:       # a bad search: the folder page again, with why
        return await render_with_folders(request, "folder.html", 400, folder=folder, q=q, error=str(exc),
                                         emails=[], total=0, page=1, pages=1, notice=None)
    await request.app.state.watcher.refresh()
    result = await run_in_threadpool(mail.search, folder.id, query, (page_number - 1) * size, size, user)
    pages = max(1, math.ceil(result.total / size))
    return await render_with_folders(
        request, "folder.html", folder=folder, q=q, error=None, emails=result.emails, total=result.total,
        page=page_number, pages=pages, notice=_notice(request),
        page_link=lambda number: f"/folders/{folder.id}?" + urlencode({**({"q": q} if q else {}), "page": number}))


def _page_number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise UsageError(f"page: a number from 1, not {text!r}")
    return int(text)


def _notice(request: Request) -> str | None:
    """What the last form did, said once on the page it led to."""
    if "sent" in request.query_params:
        return f"Message sent: {request.query_params['sent']}"
    if "deleted" in request.query_params:
        return "Message deleted."
    return None


# -- a message -------------------------------------------------------------------------

async def message_page(request: Request) -> Response:
    """GET /messages/{id}[?remote=1]: headers, text body, the HTML body's iframe, attachments,
    the part tree and defects."""
    mail = request.app.state.mail
    user = security.user_of(request)
    email_id = request.path_params["email_id"]
    email = await run_in_threadpool(mail.email, email_id, user)
    details = await run_in_threadpool(messages.details, mail, email, user)
    has_html = any(part.get("type") == "text/html" for part in details.get("htmlBody", []))
    allow_remote = request.query_params.get("remote") == "1"
    # Sanitised without remote loads, as the iframe first asks for it: the two share one parse.
    body = await run_in_threadpool(messages.safe_html_body, mail, email_id, user, False) if has_html else None
    body_url = f"/messages/{email_id}/body.html" + ("?remote=1" if allow_remote else "")
    return await render_with_folders(
        request, "message.html", email=email, details=details, folder=mail.folder(email.folder_id, user),
        text_body=_text_body(details), has_html=has_html, body_url=body_url, allow_remote=allow_remote,
        remote_resources=body.remote_blocked if body else 0, html_truncated=bool(body and body.truncated),
        date=_header(details, "Date"),
        defects=[str(Defect.from_dict(defect)) for defect in details.get("defects", [])],
        part_url=lambda part_id: f"/api/messages/{email_id}/parts/{quote(part_id, safe='')}")


def _text_body(details: dict) -> str | None:
    """The text of the message's plain-text body parts (their HTML is the iframe's)."""
    values = details.get("bodyValues", {})
    texts = [values[part["partId"]]["value"] for part in details.get("textBody", [])
             if part.get("type") != "text/html" and part.get("partId") in values]
    return "\n".join(texts) if texts else None


def _header(details: dict, name: str) -> str | None:
    return next((field["value"] for field in details.get("headers", []) if field["name"].lower() == name.lower()),
                None)


async def html_body_page(request: Request) -> Response:
    """GET /messages/{id}/body.html[?remote=1]: the iframe's document, made safe, under a CSP
    that allows no script and, unless asked, no remote load."""
    mail = request.app.state.mail
    email_id = request.path_params["email_id"]
    allow_remote = request.query_params.get("remote") == "1"
    body = await run_in_threadpool(messages.safe_html_body, mail, email_id, security.user_of(request), allow_remote)
    if body is None:
        raise NoInputError(f"message {email_id!r} has no HTML body")
    return HTMLResponse(body.document, headers={"Content-Security-Policy": html_body.body_csp(allow_remote),
                                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


async def check_page(request: Request) -> Response:
    """GET /messages/{id}/check: the strict checker's verdict on the message as stored."""
    mail = request.app.state.mail
    user = security.user_of(request)
    email = await run_in_threadpool(mail.email, request.path_params["email_id"], user)
    verdict = await run_in_threadpool(messages.check, mail, email.id, user)
    violations = [str(Violation(v["rule"], v["offset"], v["detail"], v.get("part", ""))) for v in verdict["violations"]]
    return await render_with_folders(request, "check.html", email=email, folder=mail.folder(email.folder_id, user),
                                     verdict=verdict, violations=violations)


# -- changes (POST, behind the CSRF token) ---------------------------------------------

async def delete_message(request: Request) -> Response:
    """POST /messages/{id}/delete: then the folder it was in."""
    mail = request.app.state.mail
    user = security.user_of(request)
    async with forms.read_form(request, forms.CHANGE) as form:
        security.check_csrf(request, form.get(security.CSRF_FIELD))
    email = await run_in_threadpool(mail.email, request.path_params["email_id"], user)
    await run_in_threadpool(mail.delete, email.id, user)
    await request.app.state.watcher.notify([email.folder_id])
    return RedirectResponse(f"/folders/{email.folder_id}?deleted=1", status_code=303)


async def set_flags(request: Request) -> Response:
    """POST /messages/{id}/flags with seen=1 (read) or seen=0 (unread): then the message."""
    mail = request.app.state.mail
    user = security.user_of(request)
    async with forms.read_form(request, forms.CHANGE) as form:
        security.check_csrf(request, form.get(security.CSRF_FIELD))
        seen = form.get("seen")
    if seen not in ("0", "1"):
        raise UsageError("seen: 1 (read) or 0 (unread)")
    email_id = request.path_params["email_id"]
    email = await run_in_threadpool(mail.set_flags, email_id, "S" if seen == "1" else "", "" if seen == "1" else "S",
                                    user)
    await request.app.state.watcher.notify([email.folder_id])
    return RedirectResponse(f"/messages/{email_id}", status_code=303)


# -- compose ---------------------------------------------------------------------------

COMPOSE_FIELDS = ("from", "to", "cc", "subject", "body", "in_reply_to", "references", "forward")


async def compose_form(request: Request) -> Response:
    """GET /compose[?reply=ID[&all=1]|?forward=ID]: the form, filled in for a reply or a forward."""
    _need_sender(request)
    mail = request.app.state.mail
    user = security.user_of(request)
    draft: dict = {"from": user or ""}
    params = request.query_params
    if "reply" in params:
        draft.update(await run_in_threadpool(send.reply_draft, mail, params["reply"], user, params.get("all") == "1"))
    elif "forward" in params:
        draft.update(await run_in_threadpool(send.forward_draft, mail, params["forward"], user))
    return await render_with_folders(request, "compose.html", draft=draft, error=None)


async def compose_send(request: Request) -> Response:
    """POST /compose: compose the message and send it; then the first folder, saying so. A
    message that cannot be made or sent: the form again, as filled in, with why."""
    sender = _need_sender(request)
    mail = request.app.state.mail
    user = security.user_of(request)
    async with forms.read_form(request, forms.SEND) as form:
        security.check_csrf(request, form.get(security.CSRF_FIELD))
        fields = {name: form.get(name) for name in COMPOSE_FIELDS if isinstance(form.get(name), str)}
        files = forms.attachments(form)
        try:
            message = await run_in_threadpool(send.compose_from_form, fields, files, mail, user)
            sent_id = await run_in_threadpool(sender.send, message)
        except MimekitError as exc:
            status = 400 if isinstance(exc, (UsageError, DataError)) else 502
            return await render_with_folders(request, "compose.html", status, draft=fields, error=str(exc))
    folders = mail.visible_folders(user)
    where = f"/folders/{folders[0].id}" if folders else "/compose"
    return RedirectResponse(f"{where}?{urlencode({'sent': sent_id})}", status_code=303)


def _need_sender(request: Request):
    sender = request.app.state.config.sender
    if sender is None:
        raise ReadOnlyError("this server does not send mail")     # 403
    return sender


routes = [
    Route("/", home, methods=["GET"]),
    Route("/folders/{folder_id}", folder_page, methods=["GET"]),
    Route("/messages/{email_id}", message_page, methods=["GET"]),
    Route("/messages/{email_id}/body.html", html_body_page, methods=["GET"]),
    Route("/messages/{email_id}/check", check_page, methods=["GET"]),
    Route("/messages/{email_id}/delete", delete_message, methods=["POST"]),
    Route("/messages/{email_id}/flags", set_flags, methods=["POST"]),
    Route("/compose", compose_form, methods=["GET"]),
    Route("/compose", compose_send, methods=["POST"]),
]
