"""The contract every command shares: usage errors exit 64, help lists the exit codes."""

import subprocess
import sys

from mimekit.errors import AuthError, DataError, MimekitError
from mimekit_cli.common import exit_code_for


def run_cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input,
                          capture_output=True)


def test_unknown_option_is_usage_error_64():
    result = run_cli("--no-such-flag")
    assert result.returncode == 64
    assert b"No such option" in result.stderr
    assert result.stdout == b""


def test_help_documents_exit_codes():
    result = run_cli("--help")
    assert result.returncode == 0
    assert b"75 TEMPFAIL" in result.stdout and b"77 NOPERM" in result.stdout


def test_exception_classes_map_to_sysexits():
    assert exit_code_for(DataError("x")) == 65
    assert exit_code_for(AuthError("x")) == 77

    class Unmapped(MimekitError):
        pass

    assert exit_code_for(Unmapped("x")) == 70


def test_parser_limit_takes_ascii_digits_only():
    """issue 8, item 6: "²" passes str.isdigit(), and 5000 digits make int() raise ValueError."""
    for value in ("depth=²", "depth=١", "depth=" + "9" * 5000, "depth=0", "depth=-1"):
        result = run_cli("show", "--parser-limit", value, "-", input=b"Subject: x\r\n\r\nx\r\n")
        assert result.returncode == 64, (value, result.stderr)
        assert b"NAME=N" in result.stderr and b"Traceback" not in result.stderr
    assert run_cli("show", "--parser-limit", "depth=3", "-", input=b"Subject: x\r\n\r\nx\r\n").returncode == 0


def test_a_result_error_of_any_kind_is_never_exit_0():
    """Partial failure is never 0: an error outside the usual three keeps its own code."""
    from mimekit.errors import ProtocolError
    from mimekit.transport.smtp.client import MessageResult
    from mimekit_cli.common import exit_code_for_results
    assert exit_code_for_results([MessageResult("a.eml")]) == 0
    assert exit_code_for_results([MessageResult("a.eml", error=ProtocolError("garbled reply"))]) == 76
    assert exit_code_for_results([MessageResult("a.eml", error=ProtocolError("x")),
                                  MessageResult("b.eml", error=DataError("y"))]) == 65
