"""Direct transfer to the receiving server: a domain's mail exchangers and the TLS policy
for talking to them (issue 12; `mx:` queue entries).

The exchangers (RFC 5321 §5.1): the domain's MX records, lowest preference first, records
of equal preference in random order; no MX record at all means the domain itself is the
one exchanger (the "implicit MX", its A/AAAA records); a null MX (RFC 7505: the single
record ".") means the domain accepts no mail. Each exchanger's addresses are tried in turn,
IPv4 first, until one gives a session; a domain that does not exist fails for good, a DNS
server that does not answer is a temporary failure.

The TLS policy, after Postfix's smtp_tls_security_level (a relay's submission port is
another matter: smtp:// always requires verified TLS, docs/conventions.md, Network):

  may      STARTTLS whenever offered, the certificate not checked; plaintext when the
           exchanger offers no STARTTLS (RFC 7435's opportunistic security: most
           exchangers present certificates that match no name the MX record gives)
  encrypt  STARTTLS required, the certificate not checked
  verify   STARTTLS required, the certificate verified against the exchanger's name from
           the MX record (or an address literal's address); the default

An exchanger that falls short of the policy is skipped like one that is down: nothing of
the message goes to it. What a session got ("verified TLS", "unverified TLS",
"plaintext") is reported with the exchanger's name, for the queue to record per recipient.
"""

import ipaddress
import os
import random
import ssl
from dataclasses import dataclass
from typing import Callable

import dns.exception
import dns.name
import dns.resolver

from mimekit.errors import ConfigError, MimekitError, TempFailure, UnavailableError
from mimekit.transport.connection import DEFAULT_TIMEOUT, Connection
from mimekit.transport.smtp.client import SMTPClient
from mimekit.transport.smtp.protocol import SMTPProtocol
from mimekit.transport.tls import client_context
from mimekit.transport.urls import MX_DEFAULT_POLICY, MX_POLICIES, ServerURL

SMTP_PORT = 25
MAY, ENCRYPT, VERIFY = TLS_POLICIES = MX_POLICIES
DEFAULT_POLICY = MX_DEFAULT_POLICY
VERIFIED_TLS, UNVERIFIED_TLS, PLAINTEXT = "verified TLS", "unverified TLS", "plaintext"
RESOLVER_VARIABLE = "MIMEKIT_RESOLVER"   # ADDRESS[:PORT] of the DNS server to ask
PORT_VARIABLE = "MIMEKIT_MX_PORT"        # the exchangers' port (tests, networks that redirect 25)
DNS_PORT = 53
DNS_TRY_TIMEOUT = 5.0                    # seconds per DNS query before asking again


class UndeliverableDomain(UnavailableError):
    """The recipient's domain cannot receive mail, as DNS says for good: it does not exist,
    it publishes a null MX, or none of its exchangers has an address. `enhanced` is the
    RFC 3463 status code that says which."""

    def __init__(self, message: str, enhanced: str):
        super().__init__(message)
        self.enhanced = enhanced


@dataclass(frozen=True)
class MXSettings:
    """Where direct transfer looks names up and connects: `resolver` is the (address, port)
    of the DNS server to ask (None: the system's, /etc/resolv.conf); `port` the exchangers'
    SMTP port."""

    resolver: tuple[str, int] | None = None
    port: int = SMTP_PORT

    @classmethod
    def from_environment(cls, environ=None) -> "MXSettings":
        """MIMEKIT_RESOLVER=ADDRESS[:PORT] ([V6ADDRESS]:PORT) and MIMEKIT_MX_PORT=PORT; the
        system's resolver and port 25 where unset."""
        environ = os.environ if environ is None else environ
        resolver = environ.get(RESOLVER_VARIABLE) or None
        port = environ.get(PORT_VARIABLE) or None
        return cls(resolver=_resolver_address(resolver) if resolver else None,
                   port=_port(port, PORT_VARIABLE) if port else SMTP_PORT)

    def dns_resolver(self, timeout: float) -> dns.resolver.Resolver:
        """A resolver asking this DNS server, giving up on a name after `timeout` seconds."""
        try:
            resolver = dns.resolver.Resolver(configure=self.resolver is None)
        except dns.resolver.NoResolverConfiguration as exc:
            raise ConfigError(f"no DNS server configured in /etc/resolv.conf ({RESOLVER_VARIABLE} "
                              "names one)") from exc
        if self.resolver is not None:
            resolver.nameservers, resolver.port = [self.resolver[0]], self.resolver[1]
        resolver.lifetime, resolver.timeout = timeout, min(timeout, DNS_TRY_TIMEOUT)
        return resolver


def _resolver_address(text: str) -> tuple[str, int]:
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{RESOLVER_VARIABLE}={text!r}: expected an IP address, with :PORT if not 53") from None
    return host, _port(port, RESOLVER_VARIABLE) if port else DNS_PORT


def _port(text: str, variable: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
        raise ConfigError(f"{variable}={text!r}: expected a port from 1 to 65535")
    return int(text)


@dataclass(frozen=True)
class Exchanger:
    """One mail exchanger: its name (an MX record's target, the domain itself for the
    implicit MX, or an address literal's address) and preference."""

    name: str
    preference: int


@dataclass(frozen=True)
class Transfer:
    """The session an exchanger gave: whom it was with and how well it was protected."""

    exchanger: str
    address: str
    policy: str
    tls: str            # VERIFIED_TLS, UNVERIFIED_TLS or PLAINTEXT

    def to_json(self) -> dict:
        return {"exchanger": self.exchanger, "address": self.address, "policy": self.policy, "result": self.tls}


def mail_domain(address: str) -> str:
    """The domain of an address, lower-cased: what recipients are grouped by."""
    return address.rpartition("@")[2].lower()


def find_exchangers(domain: str, resolver: dns.resolver.Resolver,
                    rng: Callable[[], float] = random.random) -> list[Exchanger]:
    """The exchangers of `domain` in the order to try them (RFC 5321 §5.1). UndeliverableDomain
    when the domain does not exist or publishes a null MX; TempFailure when DNS does not answer."""
    literal = _address_literal(domain)
    if literal:
        return [Exchanger(literal, 0)]
    try:
        answer = resolver.resolve(domain, "MX", search=False)
    except dns.resolver.NXDOMAIN:
        raise UndeliverableDomain(f"{domain}: no such domain (DNS: NXDOMAIN)", "5.1.2") from None
    except dns.resolver.NoAnswer:
        return [Exchanger(domain.rstrip("."), 0)]   # the implicit MX
    except (dns.exception.DNSException, OSError) as exc:
        raise _dns_failure(domain, "MX", exc) from exc
    records = list(answer)
    if len(records) == 1 and records[0].exchange == dns.name.root:
        raise UndeliverableDomain(f"{domain} accepts no mail (null MX, RFC 7505)", "5.1.10")
    ordered = sorted((record.preference, rng(), record.exchange.to_text(omit_final_dot=True).lower())
                     for record in records if record.exchange != dns.name.root)
    return [Exchanger(name, preference) for preference, _, name in ordered]


def exchanger_addresses(name: str, resolver: dns.resolver.Resolver) -> list[str]:
    """The IPv4 then IPv6 addresses of an exchanger; [] when it has none. TempFailure
    when DNS does not answer for either."""
    if _address_literal(name) or _is_address(name):
        return [name]
    addresses, failure = [], None
    for record_type in ("A", "AAAA"):
        try:
            addresses += [record.address for record in resolver.resolve(name, record_type, search=False)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except (dns.exception.DNSException, OSError) as exc:
            failure = _dns_failure(name, record_type, exc)
    if not addresses and failure:
        raise failure
    return addresses


def _dns_failure(name: str, record_type: str, exc: Exception) -> TempFailure:
    return TempFailure(f"{name}: DNS look-up of {record_type} failed for now: {exc}")


def _address_literal(domain: str) -> str | None:
    """The address of an address-literal domain ([192.0.2.1], [IPv6:2001:db8::1]), else None."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    inner = inner[5:] if inner[:5].lower() == "ipv6:" else inner
    return inner if _is_address(inner) else None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def unverified_context() -> ssl.SSLContext:
    """TLS that encrypts without checking whom it talks to: the `may` and `encrypt`
    policies, toward exchangers only (never for a login: no credential goes to an MX)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _ExchangerConnection(Connection):
    """A connection to one address of an exchanger whose certificate, when verified, must
    name the exchanger (not the address the name led to)."""

    def __init__(self, exchanger: str, url: ServerURL, context: ssl.SSLContext, timeout: float):
        super().__init__(url, None, timeout)
        self._context, self.host = context, exchanger
        self.where = f"{exchanger}[{url.host}]:{url.port}"


class ExchangerClient(SMTPClient):
    """An SMTP session with the first of `domain`'s exchangers that gives one under the TLS
    `policy`; then used as SMTPClient is (send_messages), without login. `transfer` says
    which exchanger and how it was protected. Use as a context manager:

        with ExchangerClient("example.org", policy=VERIFY) as client:
            for result in client.send_messages(messages): ...

    Connecting raises UndeliverableDomain when DNS says the domain takes no mail, and
    TempFailure (each exchanger's failure quoted) when none of them gave a session."""

    def __init__(self, domain: str, *, policy: str = DEFAULT_POLICY, settings: MXSettings = MXSettings(),
                 cafile: str | None = None, timeout: float = DEFAULT_TIMEOUT, chunking: bool = True,
                 rng: Callable[[], float] = random.random):
        if policy not in TLS_POLICIES:
            raise ConfigError(f"{policy!r}: unknown TLS policy (expected {', '.join(TLS_POLICIES)})")
        super().__init__(ServerURL("smtp", domain, settings.port), cafile=cafile, timeout=timeout,
                         allow_insecure=True, chunking=chunking)
        self.domain, self.policy, self.settings, self.rng = domain, policy, settings, rng
        self._context = client_context(cafile) if policy == VERIFY else unverified_context()
        self._exchanger = ""
        self.transfer: Transfer | None = None

    def connect(self) -> None:
        """Try each exchanger's addresses in order until one gives a session the policy accepts."""
        resolver = self.settings.dns_resolver(self.timeout)
        failures, only_missing_addresses = [], True
        for exchanger in find_exchangers(self.domain, resolver, self.rng):
            try:
                addresses = exchanger_addresses(exchanger.name, resolver)
            except TempFailure as exc:
                failures.append(str(exc))
                only_missing_addresses = False
                continue
            if not addresses:
                failures.append(f"{exchanger.name}: no address in DNS")
            for address in addresses:
                only_missing_addresses = False
                try:
                    self._connect_to(exchanger.name, address)
                    return
                except MimekitError as exc:
                    self.close(polite=True)
                    failures.append(f"{exchanger.name}[{address}]: {exc}")
        reasons = "; ".join(failures)
        if only_missing_addresses:
            raise UndeliverableDomain(f"{self.domain}: no exchanger has an address ({reasons})", "5.4.4")
        raise TempFailure(f"{self.domain}: no exchanger took the session ({reasons})")

    def _connect_to(self, exchanger: str, address: str) -> None:
        """One session: greeting, EHLO, STARTTLS when offered, the policy checked before
        anything of a message is sent."""
        self.url = ServerURL("smtp", address, self.settings.port)
        self.proto = SMTPProtocol()   # a fresh session; never AUTH, so never in the clear
        self._exchanger = exchanger
        super().connect()   # allow_insecure: STARTTLS when offered, else plaintext, judged below
        if not self.encrypted and self.policy != MAY:
            raise TempFailure(f"{self.conn.where}: offers no STARTTLS, and the TLS policy "
                              f"{self.policy!r} requires TLS")
        tls = PLAINTEXT if not self.encrypted else VERIFIED_TLS if self.policy == VERIFY else UNVERIFIED_TLS
        self.transfer = Transfer(exchanger, address, self.policy, tls)

    def _connect(self) -> None:
        self.conn = _ExchangerConnection(self._exchanger, self.url, self._context, self.timeout)
