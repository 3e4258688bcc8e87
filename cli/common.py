"""What every command shares: exit codes, error reporting, --json output, progress.

docs/conventions.md is the contract: data on stdout, diagnostics on stderr, sysexits codes,
errors as JSON under --json, never a bare traceback (unless --debug).
"""

import dataclasses
import errno
import io
import os
import re
import sys
import time
from contextlib import contextmanager
from functools import partial
from typing import BinaryIO, Iterator

import click

from mimekit import errors
from mimekit.defects import Defect, DefectError, apply_defect_policy
from mimekit.limits import Limits, parse_decimal
from mimekit.sizes import human_size
from mimekit.streams.files import atomic_output, open_input, widen_pipe

EXIT_OK = 0
EXIT_USAGE = 64
EXIT_DATAERR = 65
EXIT_SOFTWARE = 70
EXIT_IOERR = 74

# One place maps the engine's typed exceptions to sysexits codes.
EXIT_CODES = {
    errors.UsageError: 64,
    errors.DataError: 65,
    errors.NoInputError: 66,
    errors.NoUserError: 67,
    errors.UnavailableError: 69,
    errors.CantCreateError: 73,
    errors.IOFailure: 74,
    errors.TempFailure: 75,
    errors.ProtocolError: 76,
    errors.AuthError: 77,
    errors.ConfigError: 78,
}

# The one table of exit codes: the epilog of `mimekit --help` is made from it, and
# tests/test_readme.py checks that the README's table says the same.
EXIT_STATUSES = (
    (0, "OK", "everything asked for was done"),
    (64, "USAGE", "bad flags or arguments"),
    (65, "DATAERR", "input not usable as asked (`check` found violations, CR/LF in a header value, "
                    "`--strict` defects)"),
    (66, "NOINPUT", "an input file does not exist or cannot be read"),
    (67, "NOUSER", "a user name is unknown (`users remove`)"),
    (69, "UNAVAILABLE", "a server refused permanently (5xx), host unreachable"),
    (70, "SOFTWARE", "a bug in mimekit"),
    (73, "CANTCREAT", "an output cannot be created, or would be overwritten"),
    (74, "IOERR", "read/write error"),
    (75, "TEMPFAIL", "4xx reply, timeout, dropped connection: safe to retry"),
    (76, "PROTOCOL", "the server broke the protocol"),
    (77, "NOPERM", "authentication failed, or an insecure action was refused"),
    (78, "CONFIG", "bad or missing configuration, the password command failed"),
)
PARTIAL_FAILURE_RULE = "Partial failure (a recipient refused, a message not fetched) is never 0."

EXIT_CODE_TABLE = "\b\nExit codes (sysexits.h):\n" + "\n".join(
    f"  {code:<2} {name:<12} {meaning.replace('`', '')}" for code, name, meaning in EXIT_STATUSES
) + "\n" + PARTIAL_FAILURE_RULE



# -- text from outside ------------------------------------------------------------------

# Characters a sender could use to rewrite the reader's terminal or hide text: C0 and C1
# controls (ESC and the one-character CSI U+009B start escape sequences; BEL ends an OSC
# title), DEL, lone surrogates (undecodable bytes), line separators, and the bidi controls:
# an override (U+202E) reorders what follows, so "invoice\u202efdp.exe" would show as
# "invoiceexe.pdf". Zero-width joiners stay: emoji and several scripts need them.
_CONTROLS_BEYOND_C0 = ("\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
                       "\ud800-\udfff")
_UNPRINTABLE = re.compile(f"[\x00-\x1f{_CONTROLS_BEYOND_C0}]")
_UNESCAPED_BY_JSON = re.compile(f"[{_CONTROLS_BEYOND_C0}]")   # json.dumps escapes C0 itself


def printable(text: str) -> str:
    """`text` with every unprintable character shown as a Python escape ("\\x1b")."""
    return _UNPRINTABLE.sub(lambda match: ascii(match[0])[1:-1], text)


def exit_code_for(exc: errors.MimekitError) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_SOFTWARE


# When a run's results differ, the code that tells a script most: a message that can never
# be sent as it is, then a permanent refusal, then "try again later".
EXIT_PRECEDENCE = (65, 69, 75)


def exit_code_for_results(results) -> int:
    """One exit code for send's MessageResults: 0 only when every recipient of every message
    was accepted; a refusal's code comes from the error it carries (4xx: 75, 5xx: 69)."""
    return exit_code_for_errors(error for result in results
                                for error in [result.error] + [recipient.error for recipient in result.recipients])


def exit_code_for_errors(errors_found) -> int:
    """One exit code for many outcomes (None for a success): 0 when all succeeded, else
    the most telling of their codes (EXIT_PRECEDENCE)."""
    codes = {exit_code_for(error) for error in errors_found if error is not None}
    if not codes:
        return 0
    return next((code for code in EXIT_PRECEDENCE if code in codes), max(codes))


def json_option(func):
    """The --json flag, spelled the same way on every command."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)


def network_options(func):
    """What send, fetch and folders share, spelled once: which account of the config file
    (--account; the flags override its values), how they log in (--user, --password-command,
    --token-command, --cafile; secrets never come from argv: docs/conventions.md, Network),
    --timeout, --json and -q."""
    from mimekit.transport.connection import DEFAULT_TIMEOUT, MIN_DATA_RATE   # here: only network commands load ssl
    options = [
        click.option("--account", "account_name", metavar="NAME",
                     help="Use this account of ~/.config/mimekit/config.toml (default: its default account, "
                          "when no server is given); the flags here override its values."),
        click.option("--user", metavar="NAME", help="Login name (instead of USER@ in the URL)."),
        click.option("--password-command", metavar="CMD",
                     help="Command whose first output line is the password "
                          "(else MIMEKIT_PASSWORD, ~/.netrc, ~/.config/mimekit/config.toml)."),
        click.option("--token-command", metavar="CMD",
                     help="Log in with OAuth2 (OAUTHBEARER or XOAUTH2): command whose first output line is "
                          "the access token, run again when the server says it expired (default: the "
                          "account's token_command, unless --password-command is given)."),
        click.option("--cafile", metavar="PEM",
                     help="Also trust this CA's certificates (a private CA); verification is always on."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
                     help="Idle limit: a server silent this long, or sending under "
                          f"{MIN_DATA_RATE} bytes/s for this long, ends the session (exit 75). "
                          f"Default: the account's, else {DEFAULT_TIMEOUT:g}."),
        json_option,
        quiet_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def lazy_password(user: str | None, host: str, password_command: str | None):
    """The password look-up, as the engine calls it once TLS is up (never before, so a
    server that cannot be reached securely costs no password command)."""
    from mimekit.transport.secrets import resolve_password
    return lambda: resolve_password(user, host, password_command)


def lazy_token(settings, password_command: str | None, token_command: str | None):
    """The OAuth2 token look-up when the login is OAuth2 (--token-command, else the account's
    token_command unless --password-command asks for a password), else None. Called by the
    engine once TLS is up, and once more when the server says the token expired."""
    if password_command and token_command:
        raise errors.UsageError("--password-command and --token-command exclude each other: give one")
    if password_command or not settings.token_command or settings.url.is_local:
        return None
    from mimekit.transport.secrets import resolve_token
    return partial(resolve_token, settings.token_command)


# --parser-limit NAME=N: the parser's limits by their short names (Limits.max_<name>).
LIMIT_NAMES = {field.name.removeprefix("max_").replace("_", "-"): field.name
               for field in dataclasses.fields(Limits)}


def limits_option(func):
    """--parser-limit NAME=N, repeatable: the parser limits of docs/conventions.md, configurable
    (named apart from fetch's --limit N, which counts messages)."""
    return click.option(
        "--parser-limit", "limits", multiple=True, metavar="NAME=N", callback=_parse_limits,
        help="Change a parser limit (repeatable): " + ", ".join(LIMIT_NAMES) + ".")(func)


def _parse_limits(ctx, param, values) -> Limits:
    changes = {}
    for value in values:
        name, sep, number = value.partition("=")
        limit = parse_decimal(number)
        if not sep or name not in LIMIT_NAMES or not limit:
            raise click.BadParameter(f"{value!r}: expected NAME=N with N >= 1 and NAME one of "
                                     + ", ".join(LIMIT_NAMES), ctx=ctx, param=param)
        changes[LIMIT_NAMES[name]] = limit
    return Limits(**changes)


def quiet_option(func=None, *, help: str = "No progress on stderr; defects counted, not listed."):
    """-q/--quiet, spelled the same on every command; `@quiet_option(help=...)` where it
    silences something else."""
    option = click.option("-q", "--quiet", is_flag=True, help=help)
    return option if func is None else option(func)


def emit_json(command: str, payload: dict) -> None:
    """Print one JSON document whose first key is the schema name.

    json.dumps escapes C0 controls; the other characters `printable` would escape (DEL, C1
    controls such as the one-byte CSI U+009B, bidi overrides, lone surrogates) are written
    as \\uXXXX too: the same JSON values, and nothing a terminal acts on."""
    sys.stdout.write(json_text({"schema": f"mimekit.{command}/1", **payload}, indent=2) + "\n")
    sys.stdout.flush()


def json_text(document: dict, indent: int | None = None) -> str:
    """`document` as JSON text (on one line without `indent`), escaped as emit_json says."""
    import json   # only under --json: 2-3 ms of every start-up
    text = json.dumps(document, ensure_ascii=False, indent=indent, separators=None if indent else (",", ":"))
    return _UNESCAPED_BY_JSON.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


def print_diagnostic(command: str | None, text: str) -> None:
    """The one way a diagnostic reaches stderr: one line, "mimekit COMMAND: TEXT", made printable
    (server replies, file names and header values in it come from outside)."""
    prefix = f"mimekit {command}: " if command else "mimekit: "
    click.echo(prefix + printable(text), err=True)


def fail(command: str, as_json: bool, code: int, kind: str, message: str):
    """Report one error (one line on stderr, or one line of JSON on stdout, so that it
    also ends a JSON Lines stream cleanly) and exit with `code`. When stdout cannot take
    the JSON, the error goes to stderr instead."""
    if as_json:
        try:
            error = {"schema": f"mimekit.{command}/1", "error": {"code": code, "kind": kind, "message": message}}
            sys.stdout.write(json_text(error) + "\n")
            sys.stdout.flush()
        except StdoutError:
            _discard_stdout()
        else:
            sys.exit(code)
    print_diagnostic(command, message)
    sys.exit(code)


# -- standard output that fails ----------------------------------------------------------

class StdoutError(OSError):
    """A write to standard output failed: a full device, a closed pipe. Told apart from
    errors on the files a command writes, because the answer differs (see stdout_failed)."""


STDOUT_FILENO = 1


class _GuardedStdout(io.RawIOBase):
    """File descriptor 1, whose write errors are StdoutError."""

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return STDOUT_FILENO

    def isatty(self) -> bool:
        return os.isatty(STDOUT_FILENO)

    def write(self, data) -> int:
        try:
            return os.write(STDOUT_FILENO, data)
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None


def guard_stdout() -> None:
    """Make sys.stdout raise StdoutError when a write fails (called once, before any command)."""
    try:
        if sys.stdout is None or sys.stdout.fileno() != STDOUT_FILENO:
            return
    except (OSError, ValueError):   # already replaced by something without a descriptor
        return
    sys.stdout.flush()
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_GuardedStdout()), encoding=sys.stdout.encoding,
                                  errors=sys.stdout.errors, line_buffering=sys.stdout.line_buffering)


def _discard_stdout() -> None:
    """Point descriptor 1 at /dev/null: what is still buffered for stdout cannot fail again
    when the interpreter flushes it at exit ("Exception ignored ... BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, STDOUT_FILENO)
    os.close(devnull)


def stdout_failed(command: str | None, exc: OSError):
    """Standard output is gone, so nothing more goes there (not even a JSON error).

    A closed pipe (`mimekit show big.eml | head -1`) ends the run as it ends cat: quietly,
    killed by SIGPIPE (the shell sees 141, and `set -o pipefail` works as with every other
    tool). Exit 0 would claim that all the data was delivered. Any other write error (a
    full disk, /dev/full) is one line on stderr and exit 74."""
    _discard_stdout()
    if exc.errno == errno.EPIPE:
        import signal   # only here: its enums cost 2-3 ms of every start-up
        sys.stderr.flush()
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
        sys.exit(128 + signal.SIGPIPE)   # only reached when the parent blocked SIGPIPE
    print_diagnostic(command, f"cannot write to standard output: {exc.strerror or exc}")
    sys.exit(EXIT_IOERR)


def _debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    return bool(root and isinstance(root.obj, dict) and root.obj.get("debug"))


@contextmanager
def reporting(command: str, as_json: bool = False):
    """Run a command body, turning every failure into an exit code and one clear line."""
    try:
        yield
    except errors.MimekitError as exc:
        fail(command, as_json, exit_code_for(exc), exc.kind, str(exc))
    except StdoutError as exc:
        stdout_failed(command, exc)
    except KeyboardInterrupt:
        fail(command, as_json, 130, "interrupted", "interrupted")
    except (click.exceptions.Exit, SystemExit):
        raise
    except OSError as exc:
        if _debug_enabled():
            raise
        fail(command, as_json, EXIT_IOERR, "io", f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    except Exception as exc:  # a bug: short message, traceback only with --debug
        if _debug_enabled():
            raise
        fail(command, as_json, EXIT_SOFTWARE, "software",
             f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)")


class Progress:
    """Bytes, rate and (with a total) ETA on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None = None, quiet: bool = False):
        self.label = label
        self.total = total
        self.done = 0
        self.count = 0
        self.enabled = not quiet and sys.stderr.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0

    def update(self, nbytes: int, items: int = 0) -> None:
        self.done += nbytes
        self.count += items
        now = time.monotonic()
        if self.enabled and now - self._last_draw >= 0.2:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-6)
        rate = self.done / elapsed
        text = f"{self.label}: {human_size(self.done)}"
        if self.count:
            text += f", {self.count} messages"
        text += f", {human_size(rate)}/s"
        if self.total:
            remaining = max(self.total - self.done, 0) / rate if rate else 0
            text += f", {100 * self.done // self.total}%, ETA {remaining:.0f}s"
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self._last_draw:
            self._draw(time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()


# -- "-": standard input and output, a command-line convention ------------------------

STDIO = "-"


def stdin() -> BinaryIO:
    """Standard input as the bytes a command reads, its pipe widened (widen_pipe)."""
    widen_pipe(sys.stdin.buffer)
    return sys.stdin.buffer


def open_input_or_stdin(path: str) -> BinaryIO:
    """`path` opened for reading bytes, "-" being stdin (docs/conventions.md, Input and
    output). Only the CLI reads "-" so: for the engine it is a file of that name."""
    return stdin() if path == STDIO else open_input(path)


def stdin_if_dash(path: str) -> BinaryIO | None:
    """stdin for "-", else None: for engine calls that take a stream beside a path's name."""
    return stdin() if path == STDIO else None


@contextmanager
def output_or_stdout(path: str) -> Iterator[BinaryIO]:
    """`-o PATH` as atomic_output writes it; "-" is stdout, flushed at the end."""
    if path != STDIO:
        with atomic_output(path) as stream:
            yield stream
        return
    yield sys.stdout.buffer
    sys.stdout.buffer.flush()


# -- reading messages: what decode, show and check share --------------------------------

def text_table(rows: list[tuple], right_aligned: set[int] = frozenset()) -> list[str]:
    """Rows of cells as aligned lines (two spaces apart), every cell made printable first,
    so that a hostile cell can neither move the cursor nor break the alignment."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.rjust(width) if column in right_aligned else cell.ljust(width)
                      for column, (cell, width) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


def report_defects(command: str, defects: list[Defect]) -> None:
    """One line per defect on stderr."""
    for defect in defects:
        print_diagnostic(command, f"defect: {defect}")


def exit_if_strict(command: str, strict: bool, defects: list[Defect], as_json: bool) -> None:
    """--strict is the engine's on_defect="raise" policy applied once the work is done (the
    output is complete, the defects listed): the DefectError's exit code, 65, ends the run."""
    try:
        apply_defect_policy(defects, "raise" if strict else "record")
    except DefectError as exc:
        if not as_json:
            print_diagnostic(command, f"{len(exc.defects)} defect(s) found (--strict)")
        sys.exit(exit_code_for(exc))


def strict_option(func):
    return click.option("--strict", is_flag=True,
                        help="Exit 65 when the message has defects (after doing the work).")(func)
