"""client_context()'s system trust set: the hashed directory alone only where it provably
holds the whole CA bundle, the bundle as before otherwise; a real handshake on 127.0.0.1
shows what each context accepts and refuses."""

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import trustme

from mimekit.transport.tls import client_context

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl rehash")


class Authority:
    """A CA and a server certificate for localhost that it issued."""

    def __init__(self, name: str):
        self.ca = trustme.CA(organization_name=f"mimekit test {name}")
        self.pem = self.ca.cert_pem.bytes()
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("localhost").configure_cert(self.server_context)


@pytest.fixture
def authorities():
    return Authority("A"), Authority("B")


def system_store(tmp_path: Path, monkeypatch, bundle: list[bytes], hashed: list[bytes]) -> None:
    """Points OpenSSL's default paths (as SSL_CERT_FILE and SSL_CERT_DIR do) at a bundle of
    `bundle` and a directory of `hashed`, named by subject hash by `openssl rehash`."""
    directory = tmp_path / "certs"
    directory.mkdir()
    for number, pem in enumerate(hashed):
        (directory / f"ca{number}.pem").write_bytes(pem)
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    (tmp_path / "bundle.crt").write_bytes(b"".join(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "bundle.crt"))
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))


def accepts(context: ssl.SSLContext, authority: Authority) -> bool:
    """Whether `context` completes a handshake with a server whose certificate `authority`
    issued (a certificate verification failure is False; anything else is an error)."""
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


def loaded_cas(context: ssl.SSLContext) -> int:
    """CA certificates parsed into the context now (the directory's are read on demand)."""
    return context.cert_store_stats()["x509_ca"]


def test_a_directory_holding_the_bundle_is_searched_on_demand(tmp_path, monkeypatch, authorities):
    a, b = authorities
    system_store(tmp_path, monkeypatch, bundle=[a.pem], hashed=[a.pem])
    context = client_context()
    assert loaded_cas(context) == 0
    assert loaded_cas(ssl.create_default_context()) == 1  # what the stdlib would parse
    assert accepts(context, a)
    assert not accepts(context, b)


def test_a_certificate_only_in_the_bundle_keeps_the_bundle(tmp_path, monkeypatch, authorities):
    a, b = authorities
    system_store(tmp_path, monkeypatch, bundle=[a.pem, b.pem], hashed=[a.pem])
    context = client_context()
    assert loaded_cas(context) == 2
    assert accepts(context, b)
    assert accepts(context, a)


def test_a_copy_not_named_by_hash_does_not_count(tmp_path, monkeypatch, authorities):
    """OpenSSL's directory lookup finds only hash-named files; a stray copy of a bundle
    certificate under another name must not make the directory look complete."""
    a, b = authorities
    system_store(tmp_path, monkeypatch, bundle=[a.pem, b.pem], hashed=[a.pem])
    (tmp_path / "certs" / "stray-copy.pem").write_bytes(b.pem)
    context = client_context()
    assert loaded_cas(context) == 2
    assert accepts(context, b)


def test_a_block_that_differs_from_the_directorys_copy_keeps_the_bundle(tmp_path, monkeypatch, authorities):
    """The same CA as a TRUSTED CERTIFICATE (trust settings of its own) in the bundle is
    not the plain copy in the directory: blocks are compared whole."""
    a, _ = authorities
    (tmp_path / "a.pem").write_bytes(a.pem)
    trusted = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "a.pem"), "-trustout",
                              "-addtrust", "serverAuth"], check=True, capture_output=True).stdout
    assert b"BEGIN TRUSTED CERTIFICATE" in trusted
    system_store(tmp_path, monkeypatch, bundle=[trusted], hashed=[a.pem])
    context = client_context()
    assert loaded_cas(context) == 1
    assert accepts(context, a)


def test_without_a_directory_the_bundle_is_loaded(tmp_path, monkeypatch, authorities):
    a, b = authorities
    system_store(tmp_path, monkeypatch, bundle=[a.pem], hashed=[a.pem])
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "missing"))
    context = client_context()
    assert loaded_cas(context) == 1
    assert accepts(context, a)
    assert not accepts(context, b)


def test_cafile_adds_a_private_ca_to_the_on_demand_set(tmp_path, monkeypatch, authorities):
    a, b = authorities
    system_store(tmp_path, monkeypatch, bundle=[a.pem], hashed=[a.pem])
    (tmp_path / "b.pem").write_bytes(b.pem)
    context = client_context(str(tmp_path / "b.pem"))
    assert accepts(context, a)
    assert accepts(context, b)
