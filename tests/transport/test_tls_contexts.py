"""client_context() hands out one context per trust set and process, and a new one as soon
as a file of that trust set changes on disk: real handshakes on 127.0.0.1 show what each
context it returns accepts and refuses."""

import os
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
import trustme

from mimekit.errors import ConfigError
from mimekit.transport import tls
from mimekit.transport.tls import client_context


class Authority:
    """A CA and a TLS server context with a certificate for localhost that it issued."""

    def __init__(self, name: str, unit: str | None = None):
        self.ca = trustme.CA(organization_name=f"mimekit test {name}", organization_unit_name=unit)
        self.pem = self.ca.cert_pem.bytes()
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("localhost").configure_cert(self.server_context)


@pytest.fixture(scope="module")
def authorities():
    return Authority("A"), Authority("B")


def accepts(context: ssl.SSLContext, authority: Authority) -> bool:
    """Whether `context` completes a handshake with a server whose certificate `authority`
    issued (a verification failure is False; anything else is an error)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve():
            conn, _ = listener.accept()
            try:
                authority.server_context.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()
        server = threading.Thread(target=serve)
        server.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                try:
                    context.wrap_socket(raw, server_hostname="localhost").close()
                    return True
                except ssl.SSLCertVerificationError:
                    return False
        finally:
            server.join(10)


def rewrite(path, data: bytes) -> None:
    """Replace the file's content, its modification time visibly later (a coarse clock
    could otherwise give the old and new file the same one)."""
    before = os.stat(path).st_mtime_ns if path.exists() else 0
    path.write_bytes(data)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_trust_set_unchanged_on_disk_gets_the_same_context(tmp_path, authorities):
    a, _ = authorities
    (tmp_path / "a.pem").write_bytes(a.pem)
    first = client_context(str(tmp_path / "a.pem"))
    assert client_context(str(tmp_path / "a.pem")) is first
    assert client_context() is client_context()
    assert client_context() is not first
    assert accepts(first, a)
    assert first.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_changed_cafile_is_loaded_again(tmp_path, authorities):
    a, b = authorities
    cafile = tmp_path / "private.pem"
    rewrite(cafile, a.pem)
    before = client_context(str(cafile))
    rewrite(cafile, b.pem)
    after = client_context(str(cafile))
    assert after is not before
    assert accepts(after, b)
    assert not accepts(after, a)


def test_a_changed_system_bundle_is_loaded_again(tmp_path, monkeypatch, authorities):
    a, b = authorities
    (tmp_path / "certs").mkdir()
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "certs"))
    bundle = tmp_path / "bundle.crt"
    rewrite(bundle, a.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    trusting_a = client_context()
    assert accepts(trusting_a, a)
    assert not accepts(trusting_a, b)
    rewrite(bundle, b.pem)
    trusting_b = client_context()
    assert accepts(trusting_b, b)
    assert not accepts(trusting_b, a)
    (tmp_path / "other.crt").write_bytes(a.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "other.crt"))   # another bundle altogether
    assert accepts(client_context(), a)


def test_a_bad_cafile_is_refused_every_time(tmp_path):
    (tmp_path / "bad.pem").write_bytes(b"not a certificate\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="cannot load CA certificates"):
            client_context(str(tmp_path / "bad.pem"))


def test_only_a_few_contexts_are_kept(tmp_path, authorities):
    """Each kept context holds the whole system bundle: a process that meets many private
    CAs (a test session) must not keep one for each."""
    a, _ = authorities
    for number in range(3 * tls._KEPT_CONTEXTS):
        (tmp_path / f"{number}.pem").write_bytes(a.pem)
        client_context(str(tmp_path / f"{number}.pem"))
    assert len(tls._contexts) == tls._KEPT_CONTEXTS
    assert str(tmp_path / f"{3 * tls._KEPT_CONTEXTS - 1}.pem") in tls._contexts


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl rehash")
def test_a_certificate_edited_in_the_system_directory_is_read_again(tmp_path, monkeypatch, authorities):
    """OpenSSL keeps a certificate it has read from the hashed directory: a root replaced
    in place there (its name unchanged, so the directory itself looks the same) must not
    stay trusted in a kept context."""
    _, b = authorities
    old_root, new_root = Authority("root", unit="same subject"), Authority("root", unit="same subject")
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "root.pem").write_bytes(old_root.pem)
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    (tmp_path / "bundle.crt").write_bytes(b.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "bundle.crt"))
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    assert accepts(client_context(), old_root)
    rewrite(directory / "root.pem", new_root.pem)   # what the hash-named link points to
    context = client_context()
    assert accepts(context, new_root)
    assert not accepts(context, old_root)
