"""TLS for every client: certificates and host names verified, always.

There is deliberately no switch that turns verification off; a private CA is
trusted with `cafile`.
"""

import ssl

from mimekit.errors import ConfigError


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{cafile}: cannot load CA certificates: {exc}") from exc
    return context
