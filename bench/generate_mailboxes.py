#!/usr/bin/env python3
"""Generated mailboxes for the many-message benchmarks (bench_scan, bench_decode_many).

    python3 bench/generate_mailboxes.py --count 10000 [--seed 10] [--attachments 0.25]
        [--maildir DIR] [--mbox FILE] [--eml-dir DIR]

The same seed and count give the same messages, in the same order, in every layout (the
first N of a larger run are the N of a smaller one), so figures from two sizes or two
layouts compare like with like. The mix is what a real mailbox holds: plain text, UTF-8
names and subjects in RFC 2047 words, multipart/alternative (text + HTML), and a share
with one or two base64 attachments of 5-50 KB (RFC 2231 names, some non-ASCII). Line
endings are LF, as Maildirs and mbox files store them (CRLF in .eml files). The mbox is mboxrd, written by
`mimekit.stores.mbox.mbox_entry` (its "From " lines carry the time of writing).
"""

import argparse
import base64
import contextlib
import email.utils
import hashlib
import random
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mimekit.stores.mbox import mbox_entry  # noqa: E402

DEFAULT_SEED = 10
FIRST_DATE = 1_672_531_200   # 2023-01-01 UTC: one year of dates from here
WORDS = ("report meeting budget invoice draft review schedule quarterly update agenda release "
         "notes project status customer contract travel lunch server backup migration plan").split()
UTF8_WORDS = "réunion café Grüße façade naïve smörgåsbord 東京 会議 résumé Übersicht crème brûlée счёт".split()
NAMES = ("Alice Martin", "Bob Chen", "Carol Díaz", "Dmitri Иванов", "Émilie Rousseau", "Jürgen Groß",
         "山田 太郎", "Fatima Zahra", "Oscar Wilde", "Zoë Nakamura")
FLAG_SETS = ("S", "S", "S", "RS", "FS", "", "T", "DFPRST")   # Maildir flag letters, sorted


@dataclass(frozen=True)
class GeneratedMessage:
    data: bytes
    flags: str                      # Maildir flags
    sender: str                     # the envelope sender of its mbox "From " line
    attachments: tuple[str, ...]    # sha256 of each attachment's decoded bytes


def generate_messages(count: int, seed: int = DEFAULT_SEED, attachment_share: float = 0.25) -> Iterator[GeneratedMessage]:
    """`count` messages from one seeded generator: the same arguments, the same bytes."""
    rng = random.Random(seed)
    for number in range(count):
        yield _message(rng, number, attachment_share)


def _message(rng: random.Random, number: int, attachment_share: float) -> GeneratedMessage:
    name = rng.choice(NAMES)
    address = name.split()[0].lower().encode("ascii", "ignore").decode() or "user"
    address = f"{address}{rng.randrange(100)}@example.{rng.choice(('com', 'org', 'net'))}"
    utf8_subject = rng.random() < 0.4
    words = rng.choices(WORDS + UTF8_WORDS if utf8_subject else WORDS, k=rng.randint(2, 12))
    subject = " ".join(words).capitalize()
    headers = [
        f"Return-Path: <{address}>",
        f"Received: from mx{rng.randrange(10)}.example.net by mail.example.com; "
        f"{email.utils.formatdate(FIRST_DATE + number * 3000, usegmt=True)}",
        f"Date: {email.utils.formatdate(FIRST_DATE + number * 3000 + rng.randrange(3000), localtime=False)}",
        f"From: {email.utils.formataddr((name, address), charset='utf-8')}",
        "To: Mailbox Owner <owner@example.com>",
        "Subject: " + (subject if subject.isascii() else _encoded_words(subject)),
        f"Message-ID: <{number}.{rng.getrandbits(48):012x}@example.com>",
        "MIME-Version: 1.0",
    ]
    attachments: list[bytes] = []
    if rng.random() < attachment_share:
        attachments = [rng.randbytes(rng.randint(5_000, 50_000)) for _ in range(1 if rng.random() < 0.8 else 2)]
    text = _paragraphs(rng, utf8_subject)
    body = _alternative(rng, text) if rng.random() < 0.4 else _plain(text)
    if attachments:
        boundary = f"=_mixed_{number}"
        parts = [body] + [_attachment(rng, data) for data in attachments]
        body = _multipart("mixed", boundary, parts)
    data = ("\n".join(headers) + "\n").encode("utf-8") + body
    sha256s = tuple(hashlib.sha256(a).hexdigest() for a in attachments)
    return GeneratedMessage(data, rng.choice(FLAG_SETS), address, sha256s)


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 words of at most 20 characters each, one per folded line (cheaper
    than email.header, which measures every candidate split)."""
    chunks = [text[i:i + 20] for i in range(0, len(text), 20)]
    return "\n ".join("=?utf-8?b?" + base64.b64encode(chunk.encode("utf-8")).decode("ascii") + "?=" for chunk in chunks)


def _paragraphs(rng: random.Random, utf8: bool) -> str:
    vocabulary = WORDS + UTF8_WORDS[:4] if utf8 else WORDS
    lines = [" ".join(rng.choices(vocabulary, k=rng.randint(4, 11))) for _ in range(rng.randint(3, 40))]
    if rng.random() < 0.05:
        lines.insert(rng.randrange(len(lines)), "From the desk of the manager: a line an mbox must quote")
    return "\n".join(lines) + "\n"


def _plain(text: str) -> bytes:
    """A text/plain body with its own header lines (the caller's header block is open)."""
    charset, encoding = ("us-ascii", "7bit") if text.isascii() else ("utf-8", "8bit")
    return (f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: {encoding}\n\n"
            f"{text}").encode("utf-8")


def _alternative(rng: random.Random, text: str) -> bytes:
    html = "<html><body>" + "".join(f"<p>{line}</p>\n" for line in text.splitlines()) + "</body></html>\n"
    html_part = f"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{html}".encode("utf-8")
    return _multipart("alternative", f"=_alt_{rng.getrandbits(32):08x}", [_plain(text), html_part])


def _attachment(rng: random.Random, data: bytes) -> bytes:
    stem = rng.choice(("report", "scan", "photo", "Übersicht", "contrat signé", "data"))
    extension, media_type = rng.choice(((".pdf", "application/pdf"), (".jpg", "image/jpeg"),
                                        (".bin", "application/octet-stream"), (".zip", "application/zip")))
    filename = stem + extension
    name_parameter = (f'filename="{filename}"' if filename.isascii()
                      else "filename*=utf-8''" + urllib.parse.quote(filename, safe=""))
    return (f"Content-Type: {media_type}\nContent-Transfer-Encoding: base64\n"
            f"Content-Disposition: attachment; {name_parameter}\n\n").encode("ascii") + base64.encodebytes(data)


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'.encode("ascii")
    delimiter = f"--{boundary}\n".encode("ascii")
    return head + b"".join(delimiter + part for part in parts) + f"--{boundary}--\n".encode("ascii")


def write_mailboxes(messages: Iterable[GeneratedMessage], maildir: Path | None = None, mbox: Path | None = None,
                    eml_dir: Path | None = None) -> int:
    """Write the messages, in one pass, into each layout named: a Maildir (most in cur/
    with their flags, every tenth in new/), an mbox, a directory of numbered .eml files
    (CRLF, as a message is sent and as mail clients save it). Returns how many were written."""
    for folder in ([maildir / "cur", maildir / "new", maildir / "tmp"] if maildir else []) + ([eml_dir] if eml_dir else []):
        folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(mbox, "wb") if mbox else contextlib.nullcontext() as mbox_file:
        for count, message in enumerate(messages, 1):
            if maildir:
                unique = f"{FIRST_DATE + count}.M{count}P1.bench"
                name = f"new/{unique}" if count % 10 == 0 else f"cur/{unique}:2,{message.flags}"
                (maildir / name).write_bytes(message.data)
            if mbox_file:
                mbox_file.writelines(mbox_entry([message.data], sender=message.sender, flags=message.flags))
            if eml_dir:
                (eml_dir / f"{count:06d}.eml").write_bytes(message.data.replace(b"\n", b"\r\n"))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--attachments", type=float, default=0.25, help="share of messages with attachments")
    parser.add_argument("--maildir", type=Path)
    parser.add_argument("--mbox", type=Path)
    parser.add_argument("--eml-dir", type=Path)
    args = parser.parse_args()
    if not (args.maildir or args.mbox or args.eml_dir):
        parser.error("name at least one of --maildir, --mbox, --eml-dir")
    count = write_mailboxes(generate_messages(args.count, args.seed, args.attachments),
                            args.maildir, args.mbox, args.eml_dir)
    print(f"{count} messages written", file=sys.stderr)

if __name__ == "__main__":
    main()
