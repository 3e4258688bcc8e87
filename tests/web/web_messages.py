"""The messages the web tests read, written with mimekit's own composer: plain, non-ASCII,
HTML with an inline image and an attachment, and hostile mail. Each maker returns bytes
(CRLF, as composed); `deliver` stores them in a Maildir as a server would."""

import io
import os
import struct
import zlib

from mimekit.stores.maildir import Maildir
from mimekit.write.composer import MessageBuilder
from mimekit.write.writer import write_message

# Where hostile mail points its "remote" resources: a port nothing listens on unless a test
# starts its request log there (tests/web/test_browser.py), never a host off this machine.
REMOTE = "http://127.0.0.1:{port}"


def png(width: int = 4, height: int = 4, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small valid PNG of one colour (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def _bytes(builder: MessageBuilder) -> bytes:
    sink = io.BytesIO()
    write_message(builder.build(), sink)
    return sink.getvalue()


def plain(subject: str = "Plain hello", sender: str = "Alice <alice@example.test>",
          to: str = "bob@example.test", body: str = "Hello Bob,\nthe report is attached.\n",
          date: str | None = None) -> bytes:
    builder = MessageBuilder()
    builder.add_addresses("From", [sender])
    builder.add_addresses("To", [to])
    builder.add_header("Subject", subject)
    if date:
        builder.add_header("Date", date)
    builder.set_body(body.encode("utf-8"))      # a str would name a file to read (the composer's API)
    return _bytes(builder)


def non_ascii() -> bytes:
    """RFC 2047 subject and name, a UTF-8 body."""
    return plain(subject="Grüße aus Köln — 東京", sender="Jürgen Müller <juergen@example.test>",
                 body="Schöne Grüße,\nZoë — naïve café, 東京.\n")


ATTACHMENT = os.urandom(50_000)     # the bytes a download must give back (sha256 compared)
INLINE_IMAGE = png(16, 16, (30, 160, 40))


def html_with_image_and_attachment() -> bytes:
    """multipart/mixed: related(alternative(text, html with cid: image), image), report.bin."""
    builder = MessageBuilder()
    builder.add_addresses("From", ["Carol <carol@example.test>"])
    builder.add_addresses("To", ["bob@example.test"])
    builder.add_header("Subject", "Quarterly report with picture")
    cid = builder.add_inline(INLINE_IMAGE, filename="chart.png", content_type="image/png")
    builder.set_body(b"The chart is inline; the data is attached.\n")
    builder.set_body(f'<html><body><p>The <b>chart</b>:</p><img id="chart" alt="chart" src="cid:{cid}">'
                     f"<p>The data is attached.</p></body></html>".encode("ascii"), html=True)
    builder.attach(ATTACHMENT, filename="report data.bin", content_type="application/octet-stream")
    return _bytes(builder)


def hostile(remote_port: int) -> bytes:
    """HTML that tries every way to run script or reach a remote host, and a subject and an
    attachment name that are markup."""
    remote = REMOTE.format(port=remote_port)
    html = f"""<html><head>
<meta http-equiv="refresh" content="0; url={remote}/refresh">
<link rel="stylesheet" href="{remote}/link.css">
<style>body {{ background: url('{remote}/css-url.png'); }} @import url('{remote}/import.css');</style>
<script>window.top.__pwned = 'script'; window.__pwned = 'script';</script>
</head><body>
<p>Hostile body</p>
<img src="x" onerror="window.top.__pwned='onerror'; window.__pwned='onerror'">
<img src="{remote}/remote-image.png" id="remote">
<a id="jslink" href="javascript:window.top.__pwned='javascript-link'">click me</a>
<svg xmlns="http://www.w3.org/2000/svg"><script>window.top.__pwned='svg'</script>
<image href="{remote}/svg-image.png"/></svg>
<iframe src="{remote}/iframe"></iframe>
<object data="{remote}/object"></object>
<form action="{remote}/form"><input name="x"></form>
</body></html>"""
    builder = MessageBuilder()
    builder.add_addresses("From", ["Mallory <mallory@example.test>"])
    builder.add_addresses("To", ["bob@example.test"])
    builder.add_header("Subject", "<img src=x onerror=\"window.__pwned='subject'\"> hostile")
    builder.set_body(b"Hostile text body\n")
    builder.set_body(html.encode("utf-8"), html=True)
    builder.attach(b"<svg xmlns='http://www.w3.org/2000/svg'><script>window.__pwned='attachment'</script></svg>",
                   filename="<img src=x onerror=\"window.__pwned='filename'\">.svg", content_type="image/svg+xml")
    return _bytes(builder)


def deliver(maildir_path: str, message: bytes, flags: str = "") -> str:
    """Store `message` in the Maildir (created if missing); the stored file's path."""
    return Maildir(maildir_path).add([message], flags=flags)
