"""TLS for every client: certificates and host names verified, always.

There is deliberately no switch that turns verification off; a private CA is
trusted with `cafile`.
"""

import os
import re
import ssl

from mimekit.errors import ConfigError

# What `openssl rehash` names a certificate in a hashed directory: the subject's hash and a
# sequence number (CRLs get ".r0", and are not certificates to trust).
_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]*)-----([^-]*)-----END ([^\r\n-]*)-----")
_PEM_BEGIN = b"-----BEGIN "


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    context = _system_trust_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{cafile}: cannot load CA certificates: {exc}") from exc
    return context


def _system_trust_context() -> ssl.SSLContext:
    """`ssl.create_default_context()`'s trust set, loaded the way that costs least.

    OpenSSL's default trust set is a CA bundle file plus a hashed directory. The bundle
    is parsed whole when the context is made (about 140 certificates, ~40 ms with OpenSSL
    3.0, for every connection a command opens); the directory is searched only for the
    issuer a handshake needs. Where the directory provably holds every certificate of
    the bundle (Debian's /etc/ssl/certs does: update-ca-certificates writes both), the
    directory alone is the same trust set, so the bundle is not parsed. Anything else
    (no directory, a certificate only in the bundle or only there with trust settings,
    a block that does not parse, a file that cannot be read) loads the default set as
    before.
    """
    paths = ssl.get_default_verify_paths()  # SSL_CERT_FILE and SSL_CERT_DIR included
    if paths.cafile and paths.capath and _directory_holds_bundle(paths.cafile, paths.capath):
        return ssl.create_default_context(capath=paths.capath)
    return ssl.create_default_context()


def _directory_holds_bundle(bundle: str, directory: str) -> bool:
    """Whether every PEM block of `bundle` is, byte for byte, in a file of `directory`
    named by subject hash (where OpenSSL's directory lookup finds it)."""
    try:
        with open(bundle, "rb") as f:
            wanted = _pem_blocks(f.read())
        hashed_files = []
        for entry in os.scandir(directory):
            if _HASHED_NAME.fullmatch(entry.name):
                with open(entry.path, "rb", buffering=0) as f:  # small files: no buffer to build
                    hashed_files.append(f.readall())
    except OSError:
        return False
    found = _pem_blocks(b"\n".join(hashed_files))
    return wanted is not None and found is not None and wanted <= found


def _pem_blocks(pem: bytes) -> set[tuple[bytes, bytes]] | None:
    """The PEM blocks in `pem` as (label, base64 body without whitespace); None when a
    block does not parse, since it cannot then be compared."""
    blocks = _PEM_BLOCK.findall(pem)
    if len(blocks) != pem.count(_PEM_BEGIN) or any(begin != end for begin, _, end in blocks):
        return None
    return {(label, b"".join(body.split())) for label, body, _ in blocks}
