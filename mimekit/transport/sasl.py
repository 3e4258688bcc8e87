"""SASL written once for every protocol: OAuth2 logins for the SMTP, IMAP and POP3 clients
(the mechanisms OAUTHBEARER, RFC 7628, and XOAUTH2, Google's and Microsoft's older form of
the same idea), and reading a PLAIN response for the SMTP and POP3 servers.

The client sends one response holding the access token. A server that refuses the token
does not fail at once: it sends a challenge, base64 of a JSON document such as
{"status": "401", "schemes": "bearer", "scope": "..."} (RFC 7628 §3.2.2), which the client
must answer (OAUTHBEARER: %x01, RFC 7628 §3.2.3; XOAUTH2: an empty response) before the
server sends its final failure. A status saying the token expired or is invalid is worth one
more try with a fresh token (the token source refreshes it: `log_in_with_token`); any other
failure is not.

The token is a secret: it is never part of a message here, and the status a server sends
back is shown only after it has been checked to be a short plain word.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from mimekit.errors import AuthError, ConfigError, MimekitError

# OAUTHBEARER first: it is the standard, and it binds the token to the host and port.
PREFERENCE = ("OAUTHBEARER", "XOAUTH2")
REJECTED_TOKEN = {"401", "invalid_token"}   # RFC 6750 §3.1 and the HTTP status Google sends
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")   # b64token, RFC 6750 §2.1
_SHOWN_STATUS = re.compile(r"[A-Za-z0-9_.\-]{1,40}")
T = TypeVar("T")


class TokenRejected(AuthError):
    """The server said the token expired or is invalid: a fresh one may work."""


class OtherUserRequested(ValueError):
    """A PLAIN response asking to act as another user than the one logging in: never granted."""


def parse_plain_response(response: bytes) -> tuple[str, str]:
    """(user, password) of a PLAIN response, after base64: authzid NUL authcid NUL passwd,
    in UTF-8, the authzid empty or the user itself (RFC 4616 §2). OtherUserRequested when
    it names someone else; UnicodeDecodeError when not UTF-8; ValueError when malformed."""
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise ValueError("a PLAIN response is authzid NUL user NUL password")
    authzid, user, password = (part.decode("utf-8") for part in parts)
    if authzid and authzid != user:
        raise OtherUserRequested(f"{user!r} asked to act as {authzid!r}")
    return user, password


def choose_mechanism(offered: Iterable[str], where: str) -> str:
    """The OAuth2 mechanism to use among those the server offers; AuthError naming what it
    offers when it has neither."""
    offered = {mechanism.upper() for mechanism in offered}
    for mechanism in PREFERENCE:
        if mechanism in offered:
            return mechanism
    raise AuthError(f"{where}: the server offers neither OAUTHBEARER nor XOAUTH2, so an OAuth2 token "
                    f"cannot log in (it offers: {' '.join(sorted(offered)) or 'no SASL mechanism'})")


def initial_response(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    """The client's response (before base64) carrying `token` for `user`."""
    if not _BEARER_TOKEN.fullmatch(token):
        raise ConfigError("the token is not an OAuth2 bearer token "
                          "(RFC 6750: letters, digits and -._~+/ then = padding)")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in user):
        raise ConfigError("the user name contains control characters")
    if mechanism == "XOAUTH2":
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode("utf-8")
    # OAUTHBEARER: a gs2-header with the authorization identity as a saslname (RFC 5801 §4:
    # "=" and "," escaped), then the key/value pairs (RFC 7628 §3.1)
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode("utf-8")


def error_answer(mechanism: str) -> bytes:
    """What the client answers to the server's error challenge (before base64) so that the
    server sends its final failure."""
    return b"\x01" if mechanism == "OAUTHBEARER" else b""


@dataclass(frozen=True)
class ServerError:
    """The JSON document of a server's error challenge; `status` None when it sent none."""

    status: str | None = None

    @classmethod
    def from_challenge(cls, challenge: str) -> "ServerError":
        """Read what the server sent; anything but base64 of a JSON object gives no status."""
        try:
            document = json.loads(base64.b64decode(challenge.strip(), validate=True))
        except (binascii.Error, ValueError):
            return cls()
        status = document.get("status") if isinstance(document, dict) else None
        return cls(str(status) if isinstance(status, (str, int)) else None)

    @property
    def token_rejected(self) -> bool:
        return self.status in REJECTED_TOKEN

    def __str__(self) -> str:
        if self.status is None:
            return "no status given"
        shown = self.status if _SHOWN_STATUS.fullmatch(self.status) else "unreadable"
        return f"status {shown}"


def oauth2_failure(error: ServerError | None, refusal: MimekitError) -> MimekitError:
    """The error for a refused OAuth2 login, given `refusal` (the client's usual error for
    the server's final failure) and the `error` challenge it sent before (None if none):
    TokenRejected when that says the token expired or is invalid, else `refusal` with the
    status added. The reply code is kept."""
    if error is None:
        return refusal
    if error.token_rejected:
        failure = TokenRejected(f"{refusal} (the token expired or is invalid: {error})")
    else:
        failure = type(refusal)(f"{refusal} ({error})")
    failure.reply_code = refusal.reply_code
    return failure


def log_in_with_token(exchange: Callable[[str], T], token: Callable[[], str]) -> T:
    """Run `exchange` (one SASL exchange) with `token()` and return what it returns; when the
    server says the token expired or is invalid, ask `token()` once more (a token command
    hands out a fresh one) and try once more. A second refusal is an AuthError."""
    try:
        return exchange(token())
    except TokenRejected:
        pass
    try:
        return exchange(token())
    except TokenRejected as exc:
        final = AuthError(f"{exc}; a fresh token, asked for after that refusal, was refused as well")
        final.reply_code = exc.reply_code
        raise final from None
