"""send(): hand messages to an SMTP server over one connection, or to a local store.

The counterpart of fetch(): a target URL (smtp://, smtps://, maildir:, mbox:), messages
in, one result per message out (mimekit.transport.smtp.client.MessageResult), yielded as
each is settled. A failure of one message (a refused sender, recipient or content, a
header with no readable envelope) is its result and the next message still goes; a
failure of the whole run (the connection, the login, the store) raises, and the messages
not yet yielded were not sent.

    for result in send("maildir:./outbox", ["mail.eml"], extract=True):
        print(result.source, result.queue_id)

The password is looked up only once TLS is up, as fetch() does: a server that cannot be
reached securely never costs a password command, and none is asked for when no login is.
"""

import os
from typing import Callable, Iterable, Iterator

from mimekit.errors import UsageError
from mimekit.stores import Mbox, open_mailbox
from mimekit.transport.connection import DEFAULT_TIMEOUT
from mimekit.transport.secrets import resolve_password
from mimekit.transport.smtp.client import MessageResult, OutgoingMessage, RecipientResult, SMTPClient
from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.urls import ServerURL, parse_url

SEND_SCHEMES = {"smtp", "smtps", "smtp+plain", "maildir", "mbox"}


def send(target: ServerURL | str, messages: Iterable[OutgoingMessage | str | os.PathLike], *,
         sender: str | None = None, to: Iterable[str] = (), extract: bool = False,
         user: str | None = None, password: Callable[[], str] | None = None,
         token: Callable[[], str] | None = None, cafile: str | None = None,
         timeout: float = DEFAULT_TIMEOUT, allow_insecure: bool = False,
         on_unencrypted: Callable[[], None] | None = None,
         on_progress: Callable[[int, int], None] | None = None) -> Iterator[MessageResult]:
    """Send `messages` to `target`; yield each one's MessageResult in order.

    A message is an OutgoingMessage (prepare_message) or a path, prepared here with
    `sender`, `to` and `extract` (also take the recipients from the message's To, Cc and
    Bcc, or Resent- fields). `user` (default: the URL's) logs in with `password()`, by
    default resolve_password's look-up, or with OAuth2 when `token` is given (`token()` is
    the access token, asked for again if the server finds it expired). `allow_insecure` lets smtp:// go on without
    STARTTLS; `on_unencrypted()` is then called once, so that the caller can say so.
    `on_progress(bytes, messages)` counts what went out.
    """
    url = target if isinstance(target, ServerURL) else parse_url(target, SEND_SCHEMES)
    prepared = [message if isinstance(message, OutgoingMessage) else prepare_message(os.fspath(message), sender, to,
                                                                                      extract)
                for message in messages]
    progress = on_progress or (lambda nbytes, count: None)
    if url.is_local:
        return _deliver_locally(url, prepared, progress)
    for message in prepared:
        if not message.recipients and not message.refused:
            where = "in its To, Cc and Bcc (or Resent-) fields" if extract else "given"
            raise UsageError(f"{message.source}: no recipient {where}")
    user = user or url.user
    if token is not None and not user:
        raise UsageError("an OAuth2 token needs a user name to log in as")
    return _send_over_smtp(url, prepared, progress, user, password, token, cafile, timeout, allow_insecure,
                           on_unencrypted)


def _send_over_smtp(url: ServerURL, messages: list[OutgoingMessage], progress, user, password, token, cafile,
                    timeout, allow_insecure, on_unencrypted) -> Iterator[MessageResult]:
    with SMTPClient(url, cafile=cafile, timeout=timeout, allow_insecure=allow_insecure) as client:
        if not client.encrypted and on_unencrypted and not url.plaintext:
            on_unencrypted()
        if token is not None:
            client.login_oauth2(user, token)
        elif user:
            client.login(user, password() if password else resolve_password(user, url.host))
        for result in client.send_messages(messages, progress=lambda nbytes: progress(nbytes, 0)):
            progress(0, 1)
            yield result


def _deliver_locally(url: ServerURL, messages: list[OutgoingMessage], progress) -> Iterator[MessageResult]:
    """Each message into the store (an mbox records the envelope sender in its From_ line);
    every recipient counts as accepted by the delivery."""
    store = open_mailbox(url)
    for message in messages:
        if message.refused:
            yield MessageResult(message.source, [RecipientResult(r, False, text=str(message.refused))
                                                 for r in message.recipients], error=message.refused)
            continue
        if isinstance(store, Mbox):
            key = store.add(message.chunks(), sender=message.sender)
        else:
            key = store.add(message.chunks())
        delivered = f"delivered to {url.scheme}:{url.path}"
        progress(message.scan.size, 1)
        yield MessageResult(message.source, [RecipientResult(r, True, text=delivered) for r in message.recipients],
                            queue_id=key)
