"""Server and store URLs: smtp://, smtps://, imap://, imaps://, pop3://, pop3s://,
maildir:PATH and mbox:PATH (CONVENTIONS.md, "Network")."""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from mimekit.errors import UsageError

DEFAULT_PORTS = {
    "smtp": 587, "smtps": 465,
    "imap": 143, "imaps": 993,
    "pop3": 110, "pop3s": 995,
}
IMPLICIT_TLS = {"smtps", "imaps", "pop3s"}
LOCAL_STORES = {"maildir", "mbox"}


@dataclass(frozen=True)
class ServerURL:
    scheme: str             # "smtp", "imaps", ..., or "maildir"/"mbox" for a local store
    host: str = ""
    port: int = 0
    user: str | None = None
    path: str = ""          # IMAP folder, or the local store's filesystem path

    @property
    def is_local(self) -> bool:
        return self.scheme in LOCAL_STORES

    @property
    def implicit_tls(self) -> bool:
        return self.scheme in IMPLICIT_TLS

    @property
    def protocol(self) -> str:
        """"smtp", "imap" or "pop3", whatever the TLS flavour."""
        return self.scheme.rstrip("s") if self.scheme in IMPLICIT_TLS else self.scheme


def parse_url(text: str, allowed: set[str]) -> ServerURL:
    """Parse `text` and check its scheme is one of `allowed`; UsageError otherwise."""
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in allowed:
        raise UsageError(f"{text!r}: expected one of " + ", ".join(sorted(f"{s}:" for s in allowed)))
    if scheme in LOCAL_STORES:
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise UsageError(f"{text!r}: a {scheme}: store needs a path")
        return ServerURL(scheme=scheme, path=path)
    parts = urlsplit(text)
    if not parts.hostname:
        raise UsageError(f"{text!r}: no host name")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise UsageError(f"{text!r}: bad port") from exc
    if parts.password is not None:
        raise UsageError("passwords are never taken from the command line; "
                         "use --password-command, MIMEKIT_PASSWORD or ~/.netrc")
    user = unquote(parts.username) if parts.username else None
    return ServerURL(scheme=scheme, host=parts.hostname, port=port, user=user,
                     path=unquote(parts.path.lstrip("/")))
