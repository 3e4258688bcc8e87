"""TLS for every client: certificates and host names verified, always.

There is deliberately no switch that turns verification off; a private CA is
trusted with `cafile`.
"""

import os
import re
import ssl
import threading

from mimekit.errors import ConfigError

# Contexts kept for reuse, by `cafile`: a few, since a process uses one or two trust sets
# (a test session makes hundreds of private CAs, each a context of ~150 certificates).
_KEPT_CONTEXTS = 4
_contexts: dict[str | None, tuple[tuple, ssl.SSLContext]] = {}
_contexts_lock = threading.Lock()    # the web app sends from a thread pool
# The names `openssl rehash` gives certificates in a hashed directory (CRLs get ".rN").
_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """The context every client connection verifies with: `ssl.create_default_context()`
    (the system's trust set), TLS 1.2 at least, and `cafile`'s CAs added.

    Making one parses the whole system CA bundle (~30-40 ms with OpenSSL 3.0), and a
    process that opens many connections (a queue run, one session per domain; the web
    app, one per message sent; fetch --watch) made one for each. A context is made to be
    shared by connections, so one is kept per `cafile` and handed out again while the
    files it was loaded from are unchanged on disk; callers must not change it.
    """
    signature = _trust_files_signature(cafile)
    with _contexts_lock:
        kept = _contexts.pop(cafile, None)
        if kept is not None and kept[0] == signature:
            _contexts[cafile] = kept                 # the most recently used last
            return kept[1]
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{cafile}: cannot load CA certificates: {exc}") from exc
    with _contexts_lock:
        _contexts.pop(cafile, None)
        while len(_contexts) >= _KEPT_CONTEXTS:
            del _contexts[next(iter(_contexts))]     # the least recently used first
        _contexts[cafile] = (signature, context)
    return context


def _trust_files_signature(cafile: str | None) -> tuple:
    """What changes when the trust set on disk does: the system bundle and directory as
    OpenSSL finds them (SSL_CERT_FILE and SSL_CERT_DIR included), every certificate file
    of the directory (OpenSSL keeps one in memory once read, so an edited one would
    otherwise stay trusted), and `cafile`, each by identity, size and times (None for a
    path that is not there)."""
    paths = ssl.get_default_verify_paths()
    files = (paths.cafile, paths.capath, cafile) + _hashed_files(paths.capath)
    return (paths.cafile, paths.capath) + tuple((path, _stat_signature(path)) for path in files)


def _hashed_files(directory: str | None) -> tuple[str, ...]:
    """The files OpenSSL's directory lookup reads: those named by subject hash."""
    if not directory:
        return ()
    try:
        with os.scandir(directory) as entries:
            return tuple(sorted(entry.path for entry in entries if _HASHED_NAME.fullmatch(entry.name)))
    except OSError:
        return ()


def _stat_signature(path: str | None) -> tuple | None:
    if not path:
        return None
    try:
        status = os.stat(path)    # through symlinks: the certificate itself
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns
