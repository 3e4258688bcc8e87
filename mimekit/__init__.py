"""mimekit: a streaming MIME engine (compose, write, parse, check, extract) with SMTP/IMAP/POP3
transports and local Maildir/mbox stores.

Everything a Python caller needs is importable from here (see __all__); the engine imports
no click and never exits: failures are the typed exceptions listed below (MimekitError
and its subclasses), defects of a message read leniently are Defect values.

Names are loaded on first use (PEP 562), so `import mimekit` costs nothing of ssl, chardet
or libmagic until a caller needs them. `mimekit.fetch` and `mimekit.send` are the
functions, although packages of those names exist: reach those with
`from mimekit.fetch.run import ...`.
"""

import importlib
import sys
import types

__version__ = "0.1.0"

# Public name -> the module that defines it.
_DEFINED_IN = {
    "parse_message": "mimekit.read.tree", "Message": "mimekit.read.tree", "Part": "mimekit.read.tree",
    "compose": "mimekit.write.composer", "MessageBuilder": "mimekit.write.composer",
    "ComposedMessage": "mimekit.write.composer",
    "write_message": "mimekit.write.writer",
    "check_message": "mimekit.read.check",
    "extract_all": "mimekit.read.extract", "best_text": "mimekit.read.extract", "part_bytes": "mimekit.read.extract",
    "send": "mimekit.send",
    "fetch": "mimekit.fetch.run", "FetchOptions": "mimekit.fetch.run",
    "open_mailbox": "mimekit.stores", "Mailbox": "mimekit.stores",
    "messages": "mimekit.stores.sources", "MessageRef": "mimekit.stores.sources", "StreamSource": "mimekit.stores.sources",
    "scan_message": "mimekit.read.summary", "summarise": "mimekit.read.summary", "extract": "mimekit.read.extract",
    "map_messages": "mimekit.read.batch",
    "Limits": "mimekit.limits",
    "Defect": "mimekit.defects", "DefectKind": "mimekit.defects", "DefectError": "mimekit.defects",
    **{name: "mimekit.errors" for name in (
        "MimekitError", "UsageError", "DataError", "NoInputError", "NoUserError", "UnavailableError",
        "CantCreateError", "IOFailure", "TempFailure", "ProtocolError", "AuthError", "ConfigError")},
}

__all__ = list(_DEFINED_IN)

# Functions that share their name with a module of this package: importing that module
# must not replace the function here (the import system sets the package's attribute).
_FUNCTIONS_NAMED_LIKE_MODULES = {"fetch", "send"}


def __getattr__(name: str):
    module = _DEFINED_IN.get(name)
    if module is None:
        raise AttributeError(f"module 'mimekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _PublicModule(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name in _FUNCTIONS_NAMED_LIKE_MODULES and isinstance(value, types.ModuleType):
            return   # `import mimekit.send` keeps the module in sys.modules, not here
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _PublicModule
