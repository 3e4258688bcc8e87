"""What every command shares: exit codes, error reporting, --json output, progress.

CONVENTIONS.md is the contract: data on stdout, diagnostics on stderr, sysexits codes,
errors as JSON under --json, never a bare traceback (unless --debug).
"""

import dataclasses
import json
import re
import sys
import time
from contextlib import contextmanager

import click

from mimekit import errors
from mimekit.defects import Defect
from mimekit.limits import Limits

EXIT_OK = 0
EXIT_USAGE = 64
EXIT_DATAERR = 65
EXIT_SOFTWARE = 70

# One place maps the engine's typed exceptions to sysexits codes.
EXIT_CODES = {
    errors.UsageError: 64,
    errors.DataError: 65,
    errors.NoInputError: 66,
    errors.UnavailableError: 69,
    errors.CantCreateError: 73,
    errors.IOFailure: 74,
    errors.TempFailure: 75,
    errors.ProtocolError: 76,
    errors.AuthError: 77,
    errors.ConfigError: 78,
}

EXIT_CODE_TABLE = """\b
Exit codes (sysexits.h):
  0  OK           everything asked for was done
  64 USAGE        bad flags or arguments
  65 DATAERR      input not usable as asked (check found violations, CR/LF in a header)
  66 NOINPUT      an input file does not exist or cannot be read
  69 UNAVAILABLE  a server refused permanently (5xx), host unreachable
  70 SOFTWARE     a bug in mimekit
  73 CANTCREAT    an output cannot be created or would be overwritten
  74 IOERR        read/write error
  75 TEMPFAIL     4xx reply, timeout, dropped connection: safe to retry
  76 PROTOCOL     the server broke the protocol
  77 NOPERM       authentication failed, or an insecure action was refused
  78 CONFIG       bad or missing configuration, secret command failed
Partial failure is never 0."""


def exit_code_for(exc: errors.MimekitError) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_SOFTWARE


def json_option(func):
    """The --json flag, spelled the same way on every command."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)


def account_options(func):
    """--user, --password-command and --cafile: how send, fetch and folders log in.
    Passwords never come from argv (CONVENTIONS.md, Network)."""
    options = [
        click.option("--user", metavar="NAME", help="Login name (instead of USER@ in the URL)."),
        click.option("--password-command", metavar="CMD",
                     help="Command whose first output line is the password "
                          "(else MIMEKIT_PASSWORD, ~/.netrc, ~/.config/mimekit/config.ini)."),
        click.option("--cafile", metavar="PEM",
                     help="Also trust this CA's certificates (a private CA); verification is always on."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# --parser-limit NAME=N: the parser's limits by their short names (Limits.max_<name>).
LIMIT_NAMES = {field.name.removeprefix("max_").replace("_", "-"): field.name
               for field in dataclasses.fields(Limits)}


def limits_option(func):
    """--parser-limit NAME=N, repeatable: the parser limits of CONVENTIONS.md, configurable
    (named apart from fetch's --limit N, which counts messages)."""
    return click.option(
        "--parser-limit", "limits", multiple=True, metavar="NAME=N", callback=_parse_limits,
        help="Change a parser limit (repeatable): " + ", ".join(LIMIT_NAMES) + ".")(func)


def _parse_limits(ctx, param, values) -> Limits:
    changes = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or name not in LIMIT_NAMES or not number.isdigit() or int(number) < 1:
            raise click.BadParameter(f"{value!r}: expected NAME=N with N >= 1 and NAME one of "
                                     + ", ".join(LIMIT_NAMES), ctx=ctx, param=param)
        changes[LIMIT_NAMES[name]] = int(number)
    return Limits(**changes)


def quiet_option(func):
    return click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")(func)


def emit_json(command: str, payload: dict) -> None:
    """Print one JSON document whose first key is the schema name."""
    document = {"schema": f"mimekit.{command}/1", **payload}
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def fail(command: str, as_json: bool, code: int, kind: str, message: str):
    """Report one error (one line on stderr, or JSON on stdout) and exit with `code`."""
    if as_json:
        emit_json(command, {"error": {"code": code, "kind": kind, "message": message}})
    else:
        click.echo(f"mimekit {command}: {message}", err=True)
    sys.exit(code)


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
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not our error, and nothing left to say.
        sys.stderr.close()
        sys.exit(EXIT_OK)
    except KeyboardInterrupt:
        fail(command, as_json, 130, "interrupted", "interrupted")
    except (click.exceptions.Exit, SystemExit):
        raise
    except OSError as exc:
        if _debug_enabled():
            raise
        fail(command, as_json, 74, "io", f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
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
        text = f"{self.label}: {_human(self.done)}"
        if self.count:
            text += f", {self.count} messages"
        text += f", {_human(rate)}/s"
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


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# -- reading messages: what decode, show and check share --------------------------------

# Characters a sender could use to rewrite the reader's terminal or hide text: C0 and C1
# controls (ESC starts escape sequences), bidi overrides, line separators, lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                          "\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with every unprintable character shown as a Python escape ("\\x1b")."""
    return _UNPRINTABLE.sub(lambda match: ascii(match[0])[1:-1], text)


def report_defects(command: str, defects: list[Defect]) -> None:
    """One line per defect on stderr."""
    for defect in defects:
        click.echo(f"mimekit {command}: defect: {printable(str(defect))}", err=True)


def exit_if_strict(command: str, strict: bool, defects: list[Defect], as_json: bool) -> None:
    """Under --strict, defects make the exit status 65 once the work is done."""
    if strict and defects:
        if not as_json:
            click.echo(f"mimekit {command}: {len(defects)} defect(s) found (--strict)", err=True)
        sys.exit(EXIT_DATAERR)


def strict_option(func):
    return click.option("--strict", is_flag=True,
                        help="Exit 65 when the message has defects (after doing the work).")(func)
