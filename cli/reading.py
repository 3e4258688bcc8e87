"""What the reading commands (scan, show, check, decode) share: SOURCE... arguments, -r,
--jobs, JSON Lines, and diagnostics that name their message.

docs/conventions.md, "Many messages": every reading command takes files, directories,
Maildirs and mbox files, several at once; "-" is one message on stdin and "mbox:-" an
mbox on stdin. Under --json each message is one line (JSON Lines) carrying its `source`
reference, printed as soon as it is ready; a message that cannot be read is a record
with an "error" and makes the exit code non-zero at the end, never the end of the run.
"""

import itertools
import os
import sys
from typing import Any, Callable, Iterable, Iterator

import click

from mimekit import errors
from mimekit.defects import Defect
from mimekit.read.batch import Unreadable, default_jobs, map_messages
from mimekit.stores.sources import MessageRef, Source, StreamSource, messages_of
from mimekit_cli.common import EXIT_PRECEDENCE, STDIO, exit_code_for, json_text, print_diagnostic, stdin

STDIN_MBOX = "mbox:-"


def sources_argument(func):
    return click.argument("sources", nargs=-1, metavar="SOURCE...")(func)


def recursive_option(func):
    return click.option("-r", "--recursive", is_flag=True,
                        help="Read the subdirectories of a directory SOURCE too.")(func)


def jobs_option(func):
    return click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
                        help="Read N messages at once in worker processes (default: the number of cores).")(func)


def dask_option(func):
    return click.option("--dask", "dask_scheduler", metavar="ADDRESS",
                        help="Run on the Dask cluster whose scheduler is at ADDRESS (tcp://HOST:PORT; "
                             "needs mimekit[dask]); every worker must see the SOURCE paths.")(func)


def as_sources(arguments: tuple[str, ...]) -> list[Source]:
    """The command line's sources: none means "-"; "-" and "mbox:-" are standard input
    (only one of them, once: it can be read only once)."""
    arguments = arguments or (STDIO,)
    stdin_uses = [argument for argument in arguments if argument in (STDIO, STDIN_MBOX)]
    if len(stdin_uses) > 1:
        raise errors.UsageError("standard input can be read only once: give - or mbox:- once")
    return [StreamSource(stdin(), STDIO, mbox=argument == STDIN_MBOX) if argument in (STDIO, STDIN_MBOX)
            else argument for argument in arguments]


def _names_a_mailbox(source: Source) -> bool:
    if isinstance(source, StreamSource):
        return source.mbox
    scheme, colon, _ = source.partition(":")
    return bool(colon and scheme.lower() in ("maildir", "mbox")) or os.path.isdir(source)


def absolute_paths_only(paths: Iterable[Source | str], where: str) -> None:
    """Workers of a cluster have working directories of their own: a relative path would
    name another file there, or none."""
    for path in paths:
        if isinstance(path, StreamSource):
            raise errors.UsageError(f"{where} cannot read standard input: name files or mailboxes")
        scheme, colon, rest = path.partition(":")
        if not os.path.isabs(rest if colon and scheme.lower() in ("maildir", "mbox") else path):
            raise errors.UsageError(f"{path}: {where} needs absolute paths (each worker has its own "
                                    f"working directory)")


def json_line(command: str, record: dict) -> None:
    """One JSON Lines record on stdout, flushed at once (a consumer sees it now); escaped
    as emit_json escapes (nothing a terminal acts on)."""
    sys.stdout.write(json_text({"schema": f"mimekit.{command}/1", **record}) + "\n")
    sys.stdout.flush()


class ReadingRun:
    """One run of a reading command over its sources: lists the messages, maps the
    per-message work over them (in worker processes with --jobs), reports failures as they
    come, and gives the exit code at the end."""

    def __init__(self, command: str, sources: list[Source], recursive: bool, as_json: bool, quiet: bool = False):
        self.command = command
        self.sources = sources
        self.recursive = recursive
        self.as_json = as_json
        self.quiet = quiet
        self.messages = 0
        self.failure_codes: list[int] = []
        self.defective_messages = 0
        self.defects_not_shown = 0
        self._refs = self._listing()
        self.single = self._the_only_message()

    def _listing(self) -> Iterator[MessageRef | Unreadable]:
        """Every message of every source; a source that cannot be read is an Unreadable in
        its place."""
        for source in self.sources:
            where = source.name if isinstance(source, StreamSource) else source
            try:
                yield from messages_of(source, self.recursive)
            except errors.MimekitError as exc:
                yield Unreadable(where, exc)
            except OSError as exc:
                yield Unreadable(where, errors.IOFailure(f"{where}: {exc.strerror or exc}"))

    def _the_only_message(self) -> MessageRef | None:
        """The message, when the command line names exactly one (a file, an mbox file that
        holds one, "-"): the commands then print as they always did for one message (no
        reference before each line, `decode -o` straight into the directory, `--text`).
        A directory, a Maildir or a source named maildir:/mbox: is a mailbox however
        many messages it holds. The references looked at stay for `results`."""
        if len(self.sources) != 1 or _names_a_mailbox(self.sources[0]):
            return None
        first = next(self._refs, None)
        looked_at = [first] if first is not None else []
        only = isinstance(first, MessageRef) and not (first.kind == "stream" and first.key)
        if only and first.kind == "mbox":
            second = next(self._refs, None)
            if second is not None:
                looked_at.append(second)
                only = False
        self._refs = itertools.chain(looked_at, self._refs)
        return first if only else None

    def results(self, function: Callable[[MessageRef], Any], jobs: int | None,
                dask_scheduler: str | None = None) -> Iterator[tuple[MessageRef, Any]]:
        """(ref, function(ref)) for each message that could be read, in order: here and
        in `jobs` worker processes, or on a Dask cluster."""
        if dask_scheduler is not None:
            absolute_paths_only(self.sources, "a Dask cluster")
            from mimekit.dask import map_on_cluster   # the optional extra, loaded only when asked for
            mapped = map_on_cluster(dask_scheduler, function, self.sources, self.recursive, on_source_error=self.failed)
        else:
            mapped = map_messages(function, self._refs, jobs or default_jobs())
        for ref, result in mapped:
            self.messages += 1
            if isinstance(result, errors.MimekitError):
                self.failed(str(ref), result)
            else:
                yield ref, result

    def failed(self, where: str, exc: errors.MimekitError) -> None:
        code = exit_code_for(exc)
        self.failure_codes.append(code)
        message = str(exc)
        if not message.startswith(where):
            message = f"{where}: {message}"
        if self.as_json:
            json_line(self.command, {"source": where, "error": {"code": code, "kind": exc.kind, "message": message}})
        else:
            print_diagnostic(self.command, message)

    def report_defects(self, ref: MessageRef, defects: list[Defect], label: str = "defect") -> None:
        """A message's defects on stderr, each naming the message; with -q only counted."""
        if not defects:
            return
        self.defective_messages += 1
        if self.quiet:
            self.defects_not_shown += len(defects)
            return
        for defect in defects:
            print_diagnostic(self.command, f"{ref}: {label}: {defect}")

    def exit_code(self) -> int:
        """0 when every message was read; else the code that tells a script most."""
        if self.quiet and self.defects_not_shown and not self.as_json:
            print_diagnostic(self.command, f"{self.defective_messages} of {self.messages} message(s) have "
                                           f"defects ({self.defects_not_shown} not shown: -q)")
        if not self.failure_codes:
            return 0
        codes = set(self.failure_codes)
        if not self.as_json and self.messages > 1:
            print_diagnostic(self.command, f"{len(self.failure_codes)} of {self.messages} source(s) or message(s) "
                                           "could not be read")
        return next((code for code in EXIT_PRECEDENCE if code in codes), max(codes))
