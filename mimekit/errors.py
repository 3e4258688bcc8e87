"""Typed exceptions raised by the engine.

The library never exits; the CLI maps each class to one sysexits code
(see mimekit_cli.common.EXIT_CODES). Pick the class by what the caller can do
about it, not by where it happened.
"""


class MimekitError(Exception):
    """Base class: every failure the engine reports on purpose."""

    kind = "error"
    reply_code: int | None = None   # the server's reply code, when a server's refusal is the reason


class UsageError(MimekitError):
    """The caller asked for something contradictory or incomplete (sysexits 64)."""

    kind = "usage"


class DataError(MimekitError):
    """The input cannot be used as asked: bad header value, violations found (65)."""

    kind = "data"


class NoInputError(MimekitError):
    """An input file does not exist or cannot be read (66)."""

    kind = "no-input"


class NoUserError(MimekitError):
    """A user name is not known where it was looked up (67)."""

    kind = "no-user"


class UnavailableError(MimekitError):
    """A server refused permanently (5xx) or cannot be reached (69)."""

    kind = "unavailable"


class CantCreateError(MimekitError):
    """An output cannot be created, or would overwrite something (73)."""

    kind = "cant-create"


class IOFailure(MimekitError):
    """A read or write failed part way (74)."""

    kind = "io"


class TempFailure(MimekitError):
    """A 4xx reply, a timeout or a dropped connection: safe to retry (75)."""

    kind = "temp-fail"


class ProtocolError(MimekitError):
    """The server broke the protocol (76)."""

    kind = "protocol"


class AuthError(MimekitError):
    """Authentication failed, or an insecure action was refused (77)."""

    kind = "auth"


class ConfigError(MimekitError):
    """Configuration is missing or wrong, or the secret command failed (78)."""

    kind = "config"
