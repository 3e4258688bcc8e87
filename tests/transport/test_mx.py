"""Direct transfer (mimekit.transport.mx): MX look-up per RFC 5321 §5.1 and the TLS policies,
against a DNS server the test starts on 127.0.0.1 (tests/dns_server.py) and the real Postfix
of tests/servers.py, whose certificate names "localhost" and 127.0.0.1 (a throw-away CA).

The MX answers point at 127.0.0.1 and the exchangers' port at one of Postfix's; an exchanger
that is down is 127.0.0.2, where nothing listens (loopback: the kernel refuses at once).
Nothing leaves the machine.
"""

import uuid

import pytest
from dns_server import dns_server  # noqa: F401  (the fixture)

from mimekit.errors import ConfigError, TempFailure
from mimekit.transport.mx import (ENCRYPT, MAY, PLAINTEXT, UNVERIFIED_TLS, VERIFIED_TLS, VERIFY, Exchanger,
                                  ExchangerClient, MXSettings, UndeliverableDomain, exchanger_addresses,
                                  find_exchangers, mail_domain)
from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.urls import parse_url


def resolver(server, timeout=5.0):
    return MXSettings(resolver=server.address).dns_resolver(timeout)


# -- the exchangers -----------------------------------------------------------------------------

def test_exchangers_come_lowest_preference_first_and_equal_ones_in_random_order(dns_server):
    dns_server.zone = {"example.test": {"MX": ["20 c.example.test.", "10 B.example.test.", "10 a.example.test."]}}
    orders = {tuple(e.name for e in find_exchangers("example.test", resolver(dns_server), rng))
              for rng in ([0.9, 0.1, 0.5].pop, [0.1, 0.9, 0.5].pop)}
    assert orders == {("a.example.test", "b.example.test", "c.example.test"),
                      ("b.example.test", "a.example.test", "c.example.test")}
    assert [e.preference for e in find_exchangers("example.test", resolver(dns_server))] == [10, 10, 20]


def test_a_domain_without_mx_is_its_own_exchanger_through_its_addresses(dns_server):
    """RFC 5321 §5.1: no MX record, so the domain's A/AAAA records are the implicit MX."""
    dns_server.zone = {"example.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]}}
    assert find_exchangers("example.test", resolver(dns_server)) == [Exchanger("example.test", 0)]
    assert exchanger_addresses("example.test", resolver(dns_server)) == ["127.0.0.1", "::1"]   # IPv4 first


def test_a_null_mx_a_missing_domain_and_an_unanswering_dns_server(dns_server):
    dns_server.zone = {"null.test": {"MX": ["0 ."]}}
    dns_server.failing = {"broken.test"}
    with pytest.raises(UndeliverableDomain, match="accepts no mail") as null:
        find_exchangers("null.test", resolver(dns_server))
    with pytest.raises(UndeliverableDomain, match="no such domain") as missing:
        find_exchangers("missing.test", resolver(dns_server))
    assert (null.value.enhanced, missing.value.enhanced) == ("5.1.10", "5.1.2")
    with pytest.raises(TempFailure, match="failed for now"):
        find_exchangers("broken.test", resolver(dns_server))


def test_an_address_literal_is_its_own_exchanger_without_dns(dns_server):
    assert find_exchangers("[127.0.0.1]", resolver(dns_server)) == [Exchanger("127.0.0.1", 0)]
    assert find_exchangers("[IPv6:::1]", resolver(dns_server)) == [Exchanger("::1", 0)]
    assert exchanger_addresses("::1", resolver(dns_server)) == ["::1"]
    assert dns_server.asked == []


def test_recipients_are_grouped_by_lower_cased_domain():
    assert mail_domain("Carol@Example.TEST") == "example.test"
    assert mail_domain('"a@b"@example.test') == "example.test"


def test_resolver_and_port_come_from_the_environment_and_bad_values_are_config_errors():
    assert MXSettings.from_environment({}) == MXSettings(None, 25)
    assert MXSettings.from_environment({"MIMEKIT_RESOLVER": "127.0.0.1:5353", "MIMEKIT_MX_PORT": "2525"}) \
        == MXSettings(("127.0.0.1", 5353), 2525)
    assert MXSettings.from_environment({"MIMEKIT_RESOLVER": "[::1]:5353"}).resolver == ("::1", 5353)
    assert MXSettings.from_environment({"MIMEKIT_RESOLVER": "::1"}).resolver == ("::1", 53)
    for bad in ({"MIMEKIT_RESOLVER": "dns.example"}, {"MIMEKIT_RESOLVER": "127.0.0.1:0"},
                {"MIMEKIT_MX_PORT": "smtp"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            MXSettings.from_environment(bad)


def test_mx_urls_name_the_tls_policy_and_default_to_verify():
    assert parse_url("mx:", {"mx"}).tls_policy == "verify"
    assert parse_url("mx:May", {"mx"}).tls_policy == "may"
    with pytest.raises(Exception, match="POLICY one of may, encrypt, verify"):
        parse_url("mx:dane", {"mx"})


# -- sessions with the real Postfix -----------------------------------------------------------------

def message(tmp_path, token):
    path = tmp_path / f"{token}.eml"
    path.write_bytes(f"From: alice@example.test\r\nTo: carol@example.test\r\nSubject: {token}\r\n"
                     f"Message-ID: <{token}@example.test>\r\n\r\nHello.\r\n".encode())
    return prepare_message(str(path), to=("carol@example.test",))


def session(servers, dns, port, policy, cafile=None, **zone):
    dns.zone = {"example.test": {"MX": zone.get("mx", ["10 localhost."])},
                "localhost": {"A": ["127.0.0.1"]}, "mx.example.test": {"A": ["127.0.0.1"]},
                "down.example.test": {"A": ["127.0.0.2"]}}
    return ExchangerClient("example.test", policy=policy, settings=MXSettings(dns.address, port),
                           cafile=cafile, timeout=10)


@pytest.mark.servers
def test_verify_delivers_when_the_certificate_names_the_exchanger(mail_servers, dns_server, tmp_path):
    s, token = mail_servers, f"mx-verify-{uuid.uuid4().hex}"
    with session(s, dns_server, s.smtp_plain, VERIFY, cafile=str(s.ca_file)) as client:
        assert (client.transfer.exchanger, client.transfer.address, client.transfer.tls) \
            == ("localhost", "127.0.0.1", VERIFIED_TLS)
        [result] = client.send_messages([message(tmp_path, token)])
    assert [r.accepted for r in result.recipients] == [True]
    assert len(s.wait_for_token("carol", token)) == 1


@pytest.mark.servers
def test_verify_refuses_a_certificate_for_another_name_or_from_an_unknown_ca(mail_servers, dns_server):
    """mx.example.test leads to the same Postfix, whose certificate does not name it."""
    s = mail_servers
    with pytest.raises(TempFailure, match=r"mx\.example\.test\[127\.0\.0\.1\].*not trusted.*[Hh]ostname"):
        with session(s, dns_server, s.smtp_plain, VERIFY, cafile=str(s.ca_file), mx=["10 mx.example.test."]):
            pass
    with pytest.raises(TempFailure, match="not trusted"):
        with session(s, dns_server, s.smtp_plain, VERIFY):   # the right name, the CA not given
            pass


@pytest.mark.servers
def test_may_and_encrypt_take_an_unverified_certificate(mail_servers, dns_server):
    s = mail_servers
    for policy in (MAY, ENCRYPT):
        with session(s, dns_server, s.smtp_plain, policy, mx=["10 mx.example.test."]) as client:
            assert (client.transfer.exchanger, client.transfer.policy, client.transfer.tls) \
                == ("mx.example.test", policy, UNVERIFIED_TLS)


@pytest.mark.servers
def test_encrypt_refuses_an_exchanger_without_starttls_and_may_goes_plaintext(mail_servers, dns_server):
    """Postfix's smtp_no_tls port advertises no STARTTLS."""
    s = mail_servers
    with pytest.raises(TempFailure, match="offers no STARTTLS, and the TLS policy 'encrypt' requires TLS"):
        with session(s, dns_server, s.smtp_no_tls, ENCRYPT):
            pass
    with session(s, dns_server, s.smtp_no_tls, MAY) as client:
        assert client.transfer.tls == PLAINTEXT and not client.encrypted


@pytest.mark.servers
def test_exchangers_are_tried_in_preference_order_past_one_that_is_down(mail_servers, dns_server):
    s = mail_servers
    with session(s, dns_server, s.smtp_plain, VERIFY, cafile=str(s.ca_file),
                 mx=["20 localhost.", "5 down.example.test."]) as client:
        assert client.transfer.exchanger == "localhost"
    looked_up = [name for name, record_type in dns_server.asked if record_type == "A"]
    assert looked_up == ["down.example.test", "localhost"]


@pytest.mark.servers
def test_every_exchanger_failing_is_temporary_and_says_why_for_each(mail_servers, dns_server):
    s = mail_servers
    with pytest.raises(TempFailure) as failure:
        with session(s, dns_server, s.smtp_plain, VERIFY, mx=["5 down.example.test.", "10 nowhere.example.test."]):
            pass
    text = str(failure.value)
    assert "down.example.test[127.0.0.2]" in text and "cannot connect" in text
    assert "nowhere.example.test: no address in DNS" in text


def test_exchangers_none_of_which_has_an_address_fail_for_good(dns_server):
    dns_server.zone = {"example.test": {"MX": ["10 gone.example.test."]}}
    client = ExchangerClient("example.test", settings=MXSettings(dns_server.address, 25), timeout=5)
    with pytest.raises(UndeliverableDomain, match="no exchanger has an address") as failure:
        with client:
            pass
    assert failure.value.enhanced == "5.4.4"
