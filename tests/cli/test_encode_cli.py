"""`mimekit encode` as a user runs it: a subprocess, exit codes, one line on stderr, and
nothing half-written."""

import email
import email.policy
import os
import subprocess
import sys

import pytest

from helpers import assert_clean_message

SENDER = "Zoë <zoe@example.org>"


def encode(*args, input=None, env=None):
    """Run `mimekit encode`; EMAIL comes only from `env`, so each test chooses the sender."""
    inherited = {name: value for name, value in os.environ.items() if name != "EMAIL"}
    return subprocess.run([sys.executable, "-m", "mimekit_cli", "encode", *args], input=input,
                          capture_output=True, env={**inherited, **(env or {})})


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def assert_fails(result, code: int, *mentions: str) -> str:
    """Exit `code`, nothing on stdout, exactly one line on stderr naming `mentions`."""
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert result.stdout == b""
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    for mention in mentions:
        assert mention in stderr
    return stderr


def test_body_and_attachments_to_stdout(fixtures_dir):
    files = [fixtures_dir / name for name in ("tiny.png", "tiny.pdf", "blob-with-nul.bin", "Résumé – 履歴書.txt")]
    result = encode("--from", SENDER, "--to", "a@example.org", "--subject", "Files – ファイル",
                    "--body", fixtures_dir / "body.txt", *[arg for f in files for arg in ("--attach", f)])
    assert result.returncode == 0 and result.stderr == b""
    message = assert_clean_message(result.stdout)
    assert message["Subject"] == "Files – ファイル"
    body, *attachments = message.iter_parts()
    assert body.get_content() == (fixtures_dir / "body.txt").read_text().replace("\n", "\r\n")
    for path, part in zip(files, attachments):
        assert part.get_filename() == path.name
        assert part.get_payload(decode=True) == path.read_bytes()


def test_output_file_is_written_and_stdout_stays_empty(tmp_path, fixtures_dir):
    out = tmp_path / "message.eml"
    result = encode("--from", SENDER, "--attach", fixtures_dir / "tiny.png", "-o", out)
    assert result.returncode == 0 and result.stdout == b""
    assert_clean_message(out.read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == ["message.eml"]   # no temporary left behind


def test_body_from_stdin(fixtures_dir):
    text = (fixtures_dir / "utf8-scripts.txt").read_bytes()
    result = encode("--from", SENDER, "--body", "-", input=text)
    assert result.returncode == 0
    assert parse(result.stdout).get_content() == text.decode().replace("\n", "\r\n")


def test_files_that_can_be_read_only_once_are_spooled(fixtures_dir):
    """bash's <(command) gives a pipe: scanning it must not leave the writer nothing to read."""
    png = fixtures_dir / "tiny.png"
    result = subprocess.run(["bash", "-c", f'{sys.executable} -m mimekit_cli encode --from a@example.org '
                             f'--body <(echo hello) --attach <(cat "{png}")'], capture_output=True)
    assert result.returncode == 0, result.stderr
    body, attachment = parse(result.stdout).iter_parts()
    assert body.get_content() == "hello\r\n"
    assert attachment.get_payload(decode=True) == png.read_bytes()


def test_lf_output_has_no_cr(fixtures_dir):
    result = encode("--lf", "--from", SENDER, "--body", fixtures_dir / "body.txt",
                    "--attach", fixtures_dir / "blob-with-nul.bin")
    assert result.returncode == 0
    message = assert_clean_message(result.stdout, eol=b"\n")
    assert message.get_payload()[1].get_payload(decode=True) == (fixtures_dir / "blob-with-nul.bin").read_bytes()


def test_type_overrides_every_attachment(fixtures_dir):
    result = encode("--from", SENDER, "--type", "application/x-report",
                    "--attach", fixtures_dir / "tiny.pdf", "--attach", fixtures_dir / "tiny.png")
    types = [p.get_content_type() for p in parse(result.stdout).iter_parts()]
    assert types == ["application/x-report", "application/x-report"]


def test_forced_base64(fixtures_dir):
    result = encode("--from", SENDER, "--encoding", "base64", "--body", fixtures_dir / "body.txt")
    message = parse(result.stdout)
    assert message["Content-Transfer-Encoding"] == "base64"
    assert message.get_content() == (fixtures_dir / "body.txt").read_text().replace("\n", "\r\n")


def test_html_with_inline_image(fixtures_dir):
    result = encode("--from", SENDER, "--body", fixtures_dir / "body.txt", "--html", fixtures_dir / "body.html",
                    "--inline", fixtures_dir / "tiny.png")
    message = assert_clean_message(result.stdout)
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]


def test_bcc_is_kept_for_send(fixtures_dir):
    result = encode("--from", SENDER, "--to", "a@example.org", "--bcc", "hidden@example.org")
    assert parse(result.stdout)["Bcc"] == "hidden@example.org"


def test_sender_from_email_variable():
    result = encode(env={"EMAIL": "me@example.org"})
    assert result.returncode == 0
    assert parse(result.stdout)["From"] == "me@example.org"


def test_no_sender_is_a_usage_error():
    assert_fails(encode(), 64, "--from")


def test_missing_attachment_is_66_naming_the_path(tmp_path, fixtures_dir):
    missing = tmp_path / "no-such-report.pdf"
    out = tmp_path / "out.eml"
    result = encode("--from", SENDER, "--attach", fixtures_dir / "tiny.png", "--attach", missing, "-o", out)
    assert_fails(result, 66, str(missing))
    assert not out.exists()


def test_missing_body_is_66(tmp_path):
    assert_fails(encode("--from", SENDER, "--body", tmp_path / "nope.txt"), 66, "nope.txt")


def test_unwritable_output_is_73(tmp_path, fixtures_dir):
    out = tmp_path / "no-such-dir" / "out.eml"
    assert_fails(encode("--from", SENDER, "--body", fixtures_dir / "body.txt", "-o", out), 73, "out.eml")


def test_failed_run_leaves_an_existing_output_untouched(tmp_path):
    out = tmp_path / "out.eml"
    out.write_bytes(b"previous")
    assert_fails(encode("--from", SENDER, "--attach", tmp_path / "missing", "-o", out), 66)
    assert out.read_bytes() == b"previous"


@pytest.mark.parametrize("option", [
    ["--subject", "a\r\nBcc: victim@example.org"],
    ["--subject", "a\nBcc: victim@example.org"],
    ["--to", "a@example.org\r\nBcc: victim@example.org"],
    ["--header", "X-Note: a\r\nBcc: victim@example.org"],
])
def test_cr_or_lf_in_a_header_value_is_65(option):
    assert_fails(encode("--from", SENDER, *option), 65)


@pytest.mark.parametrize("args, mention", [
    (["--header", "no colon here"], "--header"),
    (["--header", "Content-Type: text/html"], "Content-Type"),
    (["--subject", "one", "--header", "Subject: two"], "Subject"),
    (["--type", "not-a-type", "--attach", "x"], "not-a-type"),
    (["--attach", "-"], "--attach"),
])
def test_usage_errors_are_64(args, mention):
    assert_fails(encode("--from", SENDER, *args), 64, mention)


def test_bad_option_values_are_64():
    """click itself rejects these, with its usage text (several lines) before the error."""
    result = encode("--from", SENDER, "--encoding", "uuencode")
    assert result.returncode == 64 and result.stdout == b""
    assert b"uuencode" in result.stderr and b"Traceback" not in result.stderr
