"""Reading a POSTed form within bounds, for the pages and the API alike.

Any site can make a browser POST a form to the loopback server, and a form is read before
its CSRF token can be checked: Starlette's defaults (1000 fields of 1 MiB, 1000 files)
would let one request hold a GiB in memory. Each form is read with the few fields it has,
and a malformed or oversized one is a UsageError (400, as a page or as JSON like any other
bad input) rather than Starlette's bare refusal.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from mimekit.errors import UsageError
from mimekit.web import security


@dataclass(frozen=True)
class FormLimits:
    max_files: int
    max_fields: int
    max_field_size: int         # bytes of each text field (Starlette has one bound for all of them)


# A send (the compose page, POST /api/send): its text fields (from, to, cc, bcc, subject, body,
# in_reply_to, references, forward, csrf) and room for a browser's extras; each up to 1 MiB, the
# most a message body typed into the form may be (a longer text goes as an attachment). So at
# most 12 MiB of fields in memory; files are spooled to disk.
SEND = FormLimits(max_files=20, max_fields=12, max_field_size=1024 * 1024)
# A delete or a flag change: the token and "seen".
CHANGE = FormLimits(max_files=0, max_fields=5, max_field_size=1024)


@contextlib.asynccontextmanager
async def read_form(request: Request, limits: FormLimits) -> AsyncIterator[FormData]:
    """The request's form within `limits`, its uploads' spool files closed at the end. One
    that may carry files is first refused by its declared size (security.check_form_size:
    413/411, before a byte is read)."""
    if limits.max_files:
        security.check_form_size(request)
    try:
        form = await request.form(max_files=limits.max_files, max_fields=limits.max_fields,
                                  max_part_size=limits.max_field_size)
    except HTTPException as exc:      # Starlette's refusal of a malformed or oversized form
        raise UsageError(f"form: {exc.detail}") from None
    try:
        yield form
    finally:
        await form.close()


def attachments(form: FormData) -> list[UploadFile]:
    """The files of a send form's "attachment" fields; an empty file input (no name) is none."""
    return [item for item in form.getlist("attachment") if isinstance(item, UploadFile) and item.filename]
