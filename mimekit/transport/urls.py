"""Server and store URLs: smtp://, smtps://, imap://, imaps://, pop3://, pop3s://,
maildir:PATH and mbox:PATH (docs/conventions.md, Network), and mx:[POLICY] for direct
transfer to each recipient domain's mail exchangers (mimekit.transport.mx), POLICY one of
its TLS policies: `mx:` is `mx:verify`, `mx:may` and `mx:encrypt` ask for less.

smtp+plain://, imap+plain:// and pop3+plain:// are the explicit opt-in to no TLS at all, for
a server on this machine (`mimekit serve` without a certificate): accepted only when the
host is a loopback address or "localhost", judged on the text, never by a DNS lookup."""

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from mimekit.errors import UsageError

DEFAULT_PORTS = {
    "smtp": 587, "smtps": 465,
    "imap": 143, "imaps": 993,
    "pop3": 110, "pop3s": 995,
    "smtp+plain": 587, "imap+plain": 143, "pop3+plain": 110,
}
IMPLICIT_TLS = {"smtps", "imaps", "pop3s"}
PLAINTEXT = {"smtp+plain", "imap+plain", "pop3+plain"}   # loopback only
LOCAL_STORES = {"maildir", "mbox"}
DIRECT = "mx"
MX_POLICIES = ("may", "encrypt", "verify")   # Postfix's smtp_tls_security_level names
MX_DEFAULT_POLICY = "verify"


@dataclass(frozen=True)
class ServerURL:
    scheme: str             # "smtp", "imaps", ..., or "maildir"/"mbox" for a local store
    host: str = ""
    port: int = 0
    user: str | None = None
    path: str = ""          # IMAP folder, or the local store's filesystem path
    tls_policy: str | None = None   # mx: only, one of MX_POLICIES

    @property
    def is_local(self) -> bool:
        return self.scheme in LOCAL_STORES

    @property
    def implicit_tls(self) -> bool:
        return self.scheme in IMPLICIT_TLS

    @property
    def plaintext(self) -> bool:
        """No TLS at all, asked for explicitly (a loopback host only: parse_url checks)."""
        return self.scheme in PLAINTEXT

    @property
    def protocol(self) -> str:
        """"smtp", "imap" or "pop3", whatever the TLS flavour."""
        if self.scheme in IMPLICIT_TLS:
            return self.scheme.rstrip("s")
        return self.scheme.removesuffix("+plain")


def parse_url(text: str, allowed: set[str]) -> ServerURL:
    """Parse `text` and check its scheme is one of `allowed`; UsageError otherwise.

    Error messages show the URL without its userinfo: it may hold a password."""
    shown = without_userinfo(text)
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in allowed:
        raise UsageError(f"{shown!r}: expected one of " + ", ".join(sorted(f"{s}:" for s in allowed)))
    if scheme in LOCAL_STORES:
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise UsageError(f"{shown!r}: a {scheme}: store needs a path")
        from mimekit.stores.common import expand_store_path   # here: a server URL needs no store
        return ServerURL(scheme=scheme, path=expand_store_path(text, path))
    if scheme == DIRECT:
        policy = (rest or MX_DEFAULT_POLICY).lower()
        if policy not in MX_POLICIES:
            raise UsageError(f"{shown!r}: expected mx: or mx:POLICY, POLICY one of {', '.join(MX_POLICIES)}")
        return ServerURL(scheme=scheme, tls_policy=policy)
    try:
        parts = urlsplit(text)
        host, password, port = parts.hostname, parts.password, parts.port
    except ValueError as exc:   # "[::1" (an unclosed IPv6 bracket), a port out of range or not a number;
        # urlsplit's own message may quote a piece of the password ("bob:pa/ss@host": port "pa")
        raise UsageError(f"{shown!r}: not a valid URL (expected {scheme}://[USER@]HOST[:PORT], "
                         "PORT from 1 to 65535)") from exc
    if password is not None:
        raise UsageError("passwords are never taken from the command line; "
                         "use a password command, MIMEKIT_PASSWORD or ~/.netrc")
    if not host:
        raise UsageError(f"{shown!r}: no host name")
    if port == 0:
        raise UsageError(f"{shown!r}: port 0 (expected 1 to 65535)")
    if scheme in PLAINTEXT and not is_loopback(host):
        base = scheme.removesuffix("+plain")
        raise UsageError(f"{shown!r}: {scheme}:// (no TLS) is for a server on this machine only: 127.0.0.0/8, "
                         f"::1 or localhost; use {base}:// (STARTTLS) or {base}s://")
    user = unquote(parts.username) if parts.username else None
    return ServerURL(scheme=scheme, host=host, port=port or DEFAULT_PORTS[scheme], user=user,
                     path=unquote(parts.path.lstrip("/")))


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host`: "localhost" or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a host name other than localhost may resolve to anything


def without_userinfo(text: str) -> str:
    """`text` with everything before its last "@" (user name and password) hidden after the
    scheme. Works on any text, however malformed: it must not fail where urlsplit fails."""
    before, at, after = text.rpartition("@")
    if not at:
        return text
    scheme, slashes, _ = before.partition("://")
    return f"{scheme}://…@{after}" if slashes else f"…@{after}"
