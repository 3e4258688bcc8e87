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


def test_type_applies_to_the_file_right_before_it(fixtures_dir):
    result = encode("--from", SENDER, "--html", fixtures_dir / "body.html",
                    "--attach", fixtures_dir / "tiny.pdf", "--type", "application/x-report",
                    "--inline", fixtures_dir / "tiny.png", "--type", "image/x-icon",
                    "--attach", fixtures_dir / "tiny.png", "--attach", fixtures_dir / "body.txt", "--type", "text/markdown")
    assert result.returncode == 0, result.stderr
    types = [part.get_content_type() for part in parse(result.stdout).walk() if not part.is_multipart()]
    assert types == ["text/html", "image/x-icon", "application/x-report", "image/png", "text/markdown"]


@pytest.mark.parametrize("types, mention", [
    (["--type", "text/plain", "--attach", "a.txt"], "--type text/plain comes before any --attach or --inline"),
    (["--attach", "a.txt", "--type", "text/plain", "--type", "text/x"], "two --type for --attach a.txt"),
])
def test_a_type_with_no_file_of_its_own_is_64(types, mention):
    assert_fails(encode("--from", SENDER, *types), 64, mention)


@pytest.mark.parametrize("line_end, lf_option", [(b"\r\n", []), (b"\n", ["--lf"])])
def test_a_saved_message_is_attached_as_message_rfc822_and_comes_back_byte_exact(tmp_path, line_end, lf_option):
    """Sent as it is (7bit), its line breaks are the message's own, so a saved message with
    the same line ends comes back exact: `decode --part` gives the attached message whole."""
    saved = tmp_path / "saved.txt"   # the bytes decide, not the name
    saved.write_bytes(b"MIME-Version: 1.0\nMessage-ID: <saved@example.org>\nSubject: kept\n\n"
                      b"From the start of a line\n".replace(b"\n", line_end))
    message = tmp_path / "message.eml"
    assert encode("--from", SENDER, *lf_option, "--attach", saved, "-o", message).returncode == 0
    attached, = parse(message.read_bytes()).iter_parts()
    assert attached.get_content_type() == "message/rfc822" and attached["Content-Transfer-Encoding"] == "7bit"
    decoded = subprocess.run([sys.executable, "-m", "mimekit_cli", "decode", "--part", "1", message],
                             capture_output=True)
    assert decoded.returncode == 0 and decoded.stdout == saved.read_bytes()


def test_an_8bit_saved_message_comes_back_byte_exact_through_decode_o(tmp_path):
    """message/* may not be base64 (RFC 2046 §5.2.1) and encode's output is 7-bit clean:
    the composer sends an 8-bit message as application/octet-stream in base64, so
    `decode -o` writes it back as it was."""
    saved = tmp_path / "grüße.eml"
    saved.write_bytes("From: a@example.org\nSubject: Grüße\nContent-Type: text/plain; charset=utf-8\n"
                      "Content-Transfer-Encoding: 8bit\n\nGrüße\n".encode())
    message = tmp_path / "message.eml"
    assert encode("--from", SENDER, "--attach", saved, "-o", message).returncode == 0
    extracted = tmp_path / "out"
    decoded = subprocess.run([sys.executable, "-m", "mimekit_cli", "decode", "-o", extracted, message],
                             capture_output=True)
    assert decoded.returncode == 0, decoded.stderr
    assert (extracted / saved.name).read_bytes() == saved.read_bytes()


def test_cid_reference_without_inline_part_and_shared_content_id_are_warned_about(tmp_path, fixtures_dir):
    logos = [tmp_path / folder / "logo.png" for folder in ("old", "new")]
    for logo in logos:
        logo.parent.mkdir()
        logo.write_bytes((fixtures_dir / "tiny.png").read_bytes())
    html = tmp_path / "page.html"
    html.write_text('<img src="cid:logo.png@inline"><img src="cid:chart\x1b[31m@x">')
    result = encode("--from", SENDER, "--html", html, "--inline", logos[0], "--inline", logos[1], "-q")
    assert result.returncode == 0
    assert result.stderr.decode().splitlines() == [
        f"mimekit encode: warning: inline files {logos[0]} and {logos[1]} would share Content-ID "
        f"<logo.png@inline>: {logos[1]} gets <logo.png-2@inline>",
        "mimekit encode: warning: the HTML body references cid:chart\\x1b[31m@x, which no inline part has"]
    assert_clean_message(result.stdout)


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
    (["--attach", "x", "--type", "not-a-type"], "not-a-type"),
    (["--attach", "-"], "--attach"),
])
def test_usage_errors_are_64(args, mention):
    assert_fails(encode("--from", SENDER, *args), 64, mention)


def test_bad_option_values_are_64():
    """click itself rejects these, with its usage text (several lines) before the error."""
    result = encode("--from", SENDER, "--encoding", "uuencode")
    assert result.returncode == 64 and result.stdout == b""
    assert b"uuencode" in result.stderr and b"Traceback" not in result.stderr
