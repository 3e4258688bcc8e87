"""mimekit: a streaming MIME engine (encode, decode, check) with SMTP/IMAP/POP3 transports.

The engine imports no click and never exits; failures are typed exceptions from
mimekit.errors.
"""

__version__ = "0.1.0"
