"""A large attachment downloads through the real server (uvicorn, `mimekit web`) in bounded
memory: the server streams the decoded part as it reads it, never holding it whole. Its
peak resident size is read from /proc after the download (VmHWM) and compared with the
attachment's size."""

import base64
import hashlib
import json
import os
import urllib.request

from servers import HOST

ATTACHMENT_SIZE = 200 * 2**20
CHUNK = 57 * 18396                      # a whole number of 57-byte base64 lines, about 1 MiB
SERVER_MEMORY_LIMIT = 120 * 2**20       # the server's peak: well under the 200 MiB it sends


def write_message_with_attachment(path, size: int) -> str:
    """A message with a `size`-byte random attachment, written as it is encoded; its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        file.write(b"From: big@example.test\nTo: bob@example.test\nSubject: Big attachment\n"
                   b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
                   b"--b\nContent-Type: text/plain\n\nThe data is attached.\n"
                   b"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=big.bin\n"
                   b"Content-Transfer-Encoding: base64\n\n")
        left = size
        while left:
            data = os.urandom(min(CHUNK, left))
            digest.update(data)
            file.write(base64.encodebytes(data))
            left -= len(data)
        file.write(b"--b--\n")
    return digest.hexdigest()


def peak_memory(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_200_mib_attachment_downloads_in_bounded_server_memory(tmp_path, web):
    maildir = tmp_path / "Mail"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    expected = write_message_with_attachment(maildir / "new" / "1700000000.big.host", ATTACHMENT_SIZE)
    running = web(f"maildir:{maildir}", "--http", f"{HOST}:0", "--index", str(tmp_path / "index"))
    base = f"http://{HOST}:{running.port}"
    boxes = json.load(urllib.request.urlopen(f"{base}/api/mailboxes"))["mailboxes"]
    email = json.load(urllib.request.urlopen(f"{base}/api/messages?mailbox={boxes[0]['id']}"))["emails"][0]
    details = json.load(urllib.request.urlopen(f"{base}/api/messages/{email['id']}"))
    [attachment] = details["attachments"]
    assert attachment["size"] == ATTACHMENT_SIZE
    digest, received = hashlib.sha256(), 0
    with urllib.request.urlopen(f"{base}/api/messages/{email['id']}/parts/{attachment['partId']}") as response:
        assert response.headers["Content-Disposition"].startswith("attachment")
        while data := response.read(2**20):
            digest.update(data)
            received += len(data)
    assert (received, digest.hexdigest()) == (ATTACHMENT_SIZE, expected)
    peak = peak_memory(running.process.pid)
    assert peak < SERVER_MEMORY_LIMIT, f"server peak {peak / 2**20:.0f} MiB for a {ATTACHMENT_SIZE / 2**20:.0f} MiB download"
    print(f"server peak resident size: {peak / 2**20:.1f} MiB for a {ATTACHMENT_SIZE / 2**20:.0f} MiB attachment")
