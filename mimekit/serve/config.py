"""What `mimekit serve` was asked for, in one object every part of the server reads."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    from mimekit.serve.users import Users
    from mimekit.transport.urls import ServerURL

DEFAULT_MAX_SIZE = 50 * 2**20
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_MAX_RECIPIENTS = 100     # RFC 5321 §4.5.3.1.8: a server must accept at least 100
SMTP_IDLE_TIMEOUT = 300.0        # RFC 5321 §4.5.3.2.7: a server waits 5 minutes for a command
POP3_IDLE_TIMEOUT = 600.0        # RFC 1939 §3: the autologout timer is at least 10 minutes
SESSION_TIMEOUT = 3600.0         # a whole session, whatever the client does


@dataclass(frozen=True)
class ServeConfig:
    root: str                               # the maildir:PATH to serve
    hostname: str = "localhost"             # our name in the greeting and the Received field
    domains: tuple[str, ...] = ()           # lower-case; () is the catch-all: every recipient into `root`
    users: "Users | None" = None            # the users file: logins, and the known recipients
    tls: "ssl.SSLContext | None" = None     # a server context when a certificate was given
    max_size: int = DEFAULT_MAX_SIZE        # bytes of one message, as received (SIZE)
    max_connections: int = DEFAULT_MAX_CONNECTIONS   # over all listeners
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    smtp_idle_timeout: float = SMTP_IDLE_TIMEOUT
    pop3_idle_timeout: float = POP3_IDLE_TIMEOUT
    session_timeout: float = SESSION_TIMEOUT
    relay: "ServerURL | None" = None        # where mail for other domains goes, through the queue
    queue_dir: str | None = None            # that queue (None: the default queue directory)
    insecure_plaintext_auth: bool = False   # POP3/SMTP logins allowed without TLS

    @property
    def catch_all(self) -> bool:
        return not self.domains
