"""`mimekit serve` under concurrent load (issue 13, "Load"): a smaller run of the load of
bench/bench_serve.py, checked for correctness only: every message acknowledged once, stored
once, byte for byte (LF line endings, after the trace fields), nothing else stored, and
one log line per session. No timing is asserted: the bench reports speed and memory.

Two clients: the bench's own (asyncio, raw SMTP, pipelining MAIL/RCPT/DATA as the server
offers, connections opened and closed while others are mid-message) and Python's smtplib
in threads, a client nobody here wrote."""

import re
import smtplib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_serve import RECIPIENT, SENDER, delivery_problems, run_load, small_message  # noqa: E402

MESSAGES, CLIENTS = 500, 20
SESSION_LINE = re.compile(r"^mimekit serve: smtp 127\.0\.0\.1:\d+: ", re.M)


def test_concurrent_pipelined_clients_deliver_every_message_exactly_once(serve):
    served = serve()
    per_session = 5
    result = run_load(served.smtp, MESSAGES, CLIENTS, per_session, workers=2)
    assert result.errors == []
    assert delivery_problems(served.root, MESSAGES, result.acked) == []
    log = served.stop()
    assert len(SESSION_LINE.findall(log)) == MESSAGES // per_session, log[-2000:]


def test_concurrent_lockstep_clients_deliver_every_message_exactly_once(serve):
    """The same load one command at a time, as a client that does not pipeline sends it."""
    served = serve()
    result = run_load(served.smtp, MESSAGES, CLIENTS, 25, workers=2, lockstep=True)
    assert result.errors == []
    assert delivery_problems(served.root, MESSAGES, result.acked) == []


def test_concurrent_smtplib_clients_deliver_every_message_exactly_once(serve):
    served = serve()

    def client(first: int) -> list[int]:
        sent = []
        with smtplib.SMTP(served.host, served.smtp, timeout=120) as connection:
            for n in range(first, MESSAGES, CLIENTS):
                refused = connection.sendmail(SENDER, [RECIPIENT], small_message(n))
                assert refused == {}
                sent.append(n)
        return sent

    with ThreadPoolExecutor(CLIENTS) as pool:
        acked = [n for sent in pool.map(client, range(CLIENTS)) for n in sent]
    assert delivery_problems(served.root, MESSAGES, acked) == []
    log = served.stop()
    assert len(SESSION_LINE.findall(log)) == CLIENTS, log[-2000:]
