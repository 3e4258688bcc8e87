"""Queue entries delivered directly (`--server mx:`), against the real Postfix of tests/servers.py
and a DNS server started by the test on 127.0.0.1 (tests/dns_server.py).

The command line finds both through MIMEKIT_RESOLVER (the DNS server) and MIMEKIT_MX_PORT
(Postfix's port stands for port 25). Postfix's certificate names "localhost", so an MX of
"localhost." verifies with its CA; "mx.example.test." leads to the same Postfix under a name
the certificate does not carry; "down.example.test." is 127.0.0.2, where nothing listens.
Postfix takes mail for example.test only: another domain sent to it gets its real 554.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dns_server import dns_server  # noqa: F401  (the fixture)

from mimekit.queue import DONE, FAILED, Queue, deliver_queue
from mimekit.transport.mx import MXSettings
from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.urls import parse_url

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.servers


def mimekit(*args, input=None, env=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True,
                          timeout=300, cwd=REPO, env={**os.environ, **(env or {})})


def message(token: str) -> bytes:
    return (f"From: alice@example.test\r\nTo: carol@example.test\r\nSubject: {token}\r\n"
            f"Message-ID: <{token}@example.test>\r\n\r\nHello {token}.\r\n").encode()


def zone(*mx: str) -> dict:
    return {"example.test": {"MX": list(mx)}, "other.test": {"MX": ["10 localhost."]}, "null.test": {"MX": ["0 ."]},
            "localhost": {"A": ["127.0.0.1"]}, "mx.example.test": {"A": ["127.0.0.1"]},
            "down.example.test": {"A": ["127.0.0.2"]}}


def environment(dns, port: int) -> dict:
    return {**dns.environment, "MIMEKIT_MX_PORT": str(port)}


def entries(directory) -> list[dict]:
    listed = mimekit("queue", "list", "--json", str(directory))
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)["entries"]


def by_address(recipients: list[dict]) -> dict:
    return {r["address"]: r for r in recipients}


def test_recipients_go_per_domain_with_verified_tls_and_undeliverable_domains_fail_alone(
        mail_servers, dns_server, tmp_path):
    s, token = mail_servers, f"mx-domains-{uuid.uuid4().hex}"
    dns_server.zone = zone("10 localhost.")
    recipients = ["carol@example.test", "bob@Example.TEST", "x@null.test", "y@missing.test", "z@other.test"]
    sent = mimekit("send", f"--queue={tmp_path}", "--server", "mx:", "--cafile", str(s.ca_file),
                   *[arg for r in recipients for arg in ("--to", r)], "-", input=message(token),
                   env=environment(dns_server, s.smtp_plain))
    assert sent.returncode == 69, sent.stderr   # recipients failed for good
    assert (len(s.wait_for_token("carol", token)), len(s.wait_for_token("bob", token))) == (1, 1)
    [entry] = entries(tmp_path)
    assert (entry["status"], entry["server"], entry["user"]) == ("failed", "mx:verify", None)
    got = by_address(entry["recipients"])
    verified = {"exchanger": "localhost", "address": "127.0.0.1", "policy": "verify", "result": "verified TLS"}
    assert (got["carol@example.test"]["state"], got["carol@example.test"]["transfer"]) == (DONE, verified)
    assert got["bob@Example.TEST"]["state"] == DONE
    assert (got["x@null.test"]["state"], got["x@null.test"]["last_reply"]["enhanced"]) == (FAILED, "5.1.10")
    assert (got["y@missing.test"]["state"], got["y@missing.test"]["last_reply"]["enhanced"]) == (FAILED, "5.1.2")
    assert (got["z@other.test"]["state"], got["z@other.test"]["last_reply"]["code"]) == (FAILED, 554)
    assert got["z@other.test"]["transfer"] == verified   # Postfix itself refused it, over verified TLS
    assert [name for name, kind in dns_server.asked if kind == "MX"].count("example.test") == 1   # one group
    listed = mimekit("queue", "list", str(tmp_path)).stdout.decode()
    assert "verified TLS (verify) localhost" in listed


def test_every_exchanger_down_defers_and_a_later_run_delivers(mail_servers, dns_server, tmp_path):
    s, token = mail_servers, f"mx-down-{uuid.uuid4().hex}"
    env = environment(dns_server, s.smtp_plain)
    dns_server.zone = zone("10 down.example.test.")
    sent = mimekit("send", f"--queue={tmp_path}", "--server", "mx:", "--cafile", str(s.ca_file),
                   "--to", "carol@example.test", "-", input=message(token), env=env)
    assert sent.returncode == 0, sent.stderr
    [entry] = entries(tmp_path)
    [carol] = entry["recipients"]
    assert (carol["state"], carol["attempts"], carol["transfer"]) == ("pending", 1, None)
    assert "down.example.test[127.0.0.2]" in carol["last_reply"]["text"]
    assert "cannot connect" in carol["last_reply"]["text"]
    dns_server.zone = zone("5 down.example.test.", "10 localhost.")
    assert mimekit("queue", "retry", "-d", str(tmp_path), entry["id"]).returncode == 0
    run = mimekit("queue", "run", "--json", str(tmp_path), env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    [carol] = report["entries"][0]["recipients"]
    assert (report["delivered"], carol["transfer"]["exchanger"]) == (1, "localhost")   # past the one down
    assert len(s.wait_for_token("carol", token)) == 1 and entries(tmp_path) == []


def test_dns_that_does_not_answer_defers(mail_servers, dns_server, tmp_path):
    s = mail_servers
    dns_server.zone, dns_server.failing = zone("10 localhost."), {"example.test"}
    sent = mimekit("send", f"--queue={tmp_path}", "--server", "mx:", "--to", "carol@example.test", "-",
                   input=message("servfail"), env=environment(dns_server, s.smtp_plain))
    assert sent.returncode == 0, sent.stderr
    [carol] = entries(tmp_path)[0]["recipients"]
    assert carol["state"] == "pending" and "SERVFAIL" in carol["last_reply"]["text"]


def test_verify_defers_an_unverifiable_exchanger_may_takes_it_encrypt_needs_starttls(
        mail_servers, dns_server, tmp_path):
    s, token = mail_servers, f"mx-policy-{uuid.uuid4().hex}"
    dns_server.zone = zone("10 mx.example.test.")   # a name Postfix's certificate does not carry
    env = environment(dns_server, s.smtp_plain)
    verify = mimekit("send", f"--queue={tmp_path}/verify", "--server", "mx:", "--cafile", str(s.ca_file),
                     "--to", "carol@example.test", "-", input=message(token + "-verify"), env=env)
    assert verify.returncode == 0, verify.stderr
    [carol] = entries(tmp_path / "verify")[0]["recipients"]
    assert carol["state"] == "pending" and "not trusted" in carol["last_reply"]["text"]

    may = mimekit("send", f"--queue={tmp_path}/may", "--server", "mx:may", "--json",
                  "--to", "carol@example.test", "-", input=message(token + "-may"), env=env)
    assert may.returncode == 0, may.stderr
    [carol] = json.loads(may.stdout)["entries"][0]["recipients"]
    assert (carol["state"], carol["transfer"]["result"], carol["transfer"]["policy"]) \
        == (DONE, "unverified TLS", "may")
    assert len(s.wait_for_token("carol", token + "-may")) == 1
    assert s.wait_for_token("carol", token + "-verify", count=0) == []

    no_tls = environment(dns_server, s.smtp_no_tls)   # a Postfix port that offers no STARTTLS
    encrypt = mimekit("send", f"--queue={tmp_path}/encrypt", "--server", "mx:encrypt",
                      "--to", "carol@example.test", "-", input=message(token + "-encrypt"), env=no_tls)
    assert encrypt.returncode == 0, encrypt.stderr
    [carol] = entries(tmp_path / "encrypt")[0]["recipients"]
    assert carol["state"] == "pending" and "requires TLS" in carol["last_reply"]["text"]


def test_library_one_outcome_per_entry_across_its_domains(mail_servers, dns_server, tmp_path):
    """deliver_queue(mx=MXSettings(...)): the DNS server and port as parameters, no environment."""
    s, token = mail_servers, f"mx-library-{uuid.uuid4().hex}"
    dns_server.zone = zone("10 localhost.")
    path = tmp_path / "message.eml"
    path.write_bytes(message(token))
    with Queue(str(tmp_path / "queue")) as queue:
        entry = queue.spool(prepare_message(str(path), to=("carol@example.test", "z@other.test")),
                            parse_url("mx:", {"mx"}), cafile=str(s.ca_file), timeout=30)
        report = deliver_queue(queue, mx=MXSettings(dns_server.address, s.smtp_plain))
    [outcome] = report.outcomes
    assert (outcome.id, outcome.status, set(outcome.attempted)) \
        == (entry.id, "failed", {"carol@example.test", "z@other.test"})
    assert (report.recipients(DONE), report.recipients(FAILED)) == (1, 1)
    assert len(s.wait_for_token("carol", token)) == 1
