"""A small authoritative DNS server on 127.0.0.1 (a random UDP port) for direct-transfer tests.

Written on dnspython's message classes (the library mimekit resolves with), so the tests
need nothing more. It answers from `zone`, which a test fills: {name: {type: [rdata text]}},
e.g. {"example.test": {"MX": ["10 localhost."]}, "localhost": {"A": ["127.0.0.1"]}}. A name
absent from the zone is NXDOMAIN; a name present without the type asked is an empty
NOERROR answer (no such record); a name in `failing` gets SERVFAIL. Every question is kept
in `asked` as (name, type), for tests that check what was looked up.
"""

import socket
import threading

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

TTL = 60


class DNSServer:
    def __init__(self):
        self.zone: dict[str, dict[str, list[str]]] = {}
        self.failing: set[str] = set()
        self.asked: list[tuple[str, str]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)   # so that close() is noticed
        self.address = self._socket.getsockname()   # (host, port)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def environment(self) -> dict[str, str]:
        """MIMEKIT_RESOLVER pointing at this server."""
        return {"MIMEKIT_RESOLVER": f"{self.address[0]}:{self.address[1]}"}

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            # records in zone order: dnspython shuffles them by default, which would make the
            # order find_exchangers sees (and gives its rng values to) differ from one query to the next
            self._socket.sendto(self._answer(query).to_wire(want_shuffle=False), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        record_type = dns.rdatatype.to_text(question.rdtype)
        self.asked.append((name, record_type))
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.zone[name].get(record_type):
            response.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", record_type,
                                                            self.zone[name][record_type]))
        return response

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def dns_server():
    server = DNSServer()
    try:
        yield server
    finally:
        server.close()
