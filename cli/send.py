"""`mimekit send`: hand messages to an SMTP server over one connection, or to a local store.

Thin by design: options in, mimekit.send.send() does the work, results out (one line per
message on stderr, or one JSON document), and one exit code for the whole run: 0 only
when every recipient of every message was accepted.
"""

import sys

import click

from mimekit.accounts import resolve_settings
from mimekit.errors import MimekitError, UsageError
from mimekit.send import SEND_SCHEMES, send
from mimekit.transport.smtp.client import MessageResult, RecipientResult
from mimekit.transport.smtp.envelope import prepare_message
from mimekit_cli.common import (Progress, emit_json, exit_code_for, exit_code_for_results, lazy_password,
                                lazy_token, network_options, print_diagnostic, reporting, stdin_if_dash)


@click.command("send")
@click.option("--server", metavar="URL",
              help="smtp://HOST[:PORT] (STARTTLS, required), smtps://HOST[:PORT] (implicit TLS), "
                   "smtp+plain://HOST[:PORT] (no TLS, for a server on this machine only: 127.0.0.0/8, ::1, "
                   "localhost), maildir:PATH or mbox:PATH. Default: the account's smtp URL.")
@network_options
@click.option("--insecure-plaintext-auth", is_flag=True,
              help="Allow a server without STARTTLS: log in and send in the clear (a warning is printed).")
@click.option("--from", "sender", metavar="ADDR",
              help="Envelope sender (default: the account's from, else the From header).")
@click.option("--to", "recipients", metavar="ADDR", multiple=True, help="Envelope recipient (repeatable).")
@click.option("-t", "extract", is_flag=True,
              help="Also send to the To, Cc and Bcc addresses of the message (Resent-To, Resent-Cc and "
                   "Resent-Bcc instead when it has Resent- fields: it is being resent).")
@click.option("--queue", "queue_dir", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Queue the messages durably (DIR: the account's queue_dir, else "
                   "$XDG_STATE_HOME/mimekit/queue), then try once now; exit 0 once queued, even if "
                   "the try was deferred (`mimekit queue run` retries). Give DIR as --queue=DIR.")
@click.argument("files", nargs=-1, metavar="[FILE|-]...")
def send_command(server, account_name, user, password_command, token_command, cafile, timeout, as_json, quiet,
                 insecure_plaintext_auth, sender, recipients, extract, queue_dir, files):
    """Send messages (files, or stdin) over one SMTP connection, or deliver them locally.

    Bcc and Resent-Bcc fields are never transmitted. Each --to and --from is one address
    (ADDR or 'Name <ADDR>'); an address that cannot be read without guessing is refused
    (65), also in a header read for the envelope. Exit 0 only when every recipient of every
    message was accepted; 75 means try again later (4xx, timeout, dropped connection).
    """
    files = files or ("-",)
    if queue_dir is not None:
        from mimekit_cli.queue import send_queued
        send_queued(queue_dir, server, account_name, user, password_command, token_command, cafile, timeout, as_json,
                    quiet, insecure_plaintext_auth, sender, recipients, extract, files)
    with reporting("send", as_json):
        if files.count("-") > 1:
            raise UsageError("stdin (-) can be read only once")
        settings = resolve_settings(account_name, server, SEND_SCHEMES, user=user, password_command=password_command,
                                    token_command=token_command, cafile=cafile, timeout=timeout)
        url, user = settings.url, settings.url.user
        token = lazy_token(settings, password_command, token_command)
        for given, flag in ((settings.password_command, "--password-command"), (token, "--token-command")):
            if given and not user and not url.is_local:
                raise UsageError(f"{flag} needs --user (or smtp://USER@HOST)")
        sender = settings.from_address if sender is None else sender   # "" is the null sender, given
        messages = [prepare_message(path, sender, recipients, extract, stream=stdin_if_dash(path)) for path in files]
        progress = Progress("send", total=sum(m.scan.size for m in messages), quiet=quiet or as_json)
        outcomes = send(url, messages, extract=extract, user=user,   # checks every message before any goes out
                        password=lazy_password(user, url.host, settings.password_command), token=token,
                        cafile=settings.cafile,
                        timeout=settings.timeout,
                        allow_insecure=insecure_plaintext_auth, on_unencrypted=lambda: print_diagnostic(
                            "send", f"warning: {url.host} offers no STARTTLS; continuing WITHOUT "
                                    "encryption because --insecure-plaintext-auth was given"),
                        on_progress=progress.update)
        results: list[MessageResult] = []
        try:
            for result in outcomes:
                results.append(result)
        except MimekitError as exc:
            progress.close()
            _report(messages, results, as_json, quiet, failure=exc)
            sys.exit(exit_code_for(exc))
        progress.close()
        _report(messages, results, as_json, quiet)
        sys.exit(exit_code_for_results(results))


def _report(messages, results, as_json, quiet, failure: MimekitError | None = None) -> None:
    """Every message's outcome; those the run never settled are reported as not sent."""
    unsent = [MessageResult(m.source, [RecipientResult(r, False, text=f"not sent: {failure}")
                                       for r in m.recipients])
              for m in messages[len(results):]]
    if as_json:
        document = {"messages": [_result_json(r) for r in results + unsent]}
        if failure:
            document["error"] = {"code": exit_code_for(failure), "kind": failure.kind, "message": str(failure)}
        emit_json("send", document)
        return
    for result in results:
        if result.error is not None:
            print_diagnostic("send", f"{result.source}: not sent: {result.error}")
            continue
        accepted = [r for r in result.recipients if r.accepted]
        for recipient in result.recipients:
            if not recipient.accepted:
                reply = " ".join(str(part) for part in (recipient.code, recipient.enhanced, recipient.text) if part)
                print_diagnostic("send", f"{result.source}: {recipient.address} refused: {reply}")
        if not quiet and accepted:
            queued = f", queued as {result.queue_id}" if result.queue_id else ""
            converted = ", converted to 7-bit for this server" if result.converted_to_7bit else ""
            print_diagnostic("send", f"{result.source}: {len(accepted)} of {len(result.recipients)} "
                                     f"recipient(s) accepted{queued}{converted}")
    if failure:
        not_sent = f"; not sent: {', '.join(m.source for m in unsent)}" if unsent else ""
        print_diagnostic("send", f"{failure}{not_sent}")


def _result_json(result: MessageResult) -> dict:
    document = {
        "source": result.source,
        "queue_id": result.queue_id,
        "converted_to_7bit": result.converted_to_7bit,
        "recipients": [{"address": r.address, "accepted": r.accepted, "code": r.code,
                        "enhanced": r.enhanced, "text": r.text} for r in result.recipients],
    }
    if result.error is not None:
        document["error"] = {"code": exit_code_for(result.error), "kind": result.error.kind,
                             "message": str(result.error)}
    return document


COMMANDS = [send_command]
