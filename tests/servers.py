"""Real Postfix and Dovecot on 127.0.0.1, one throw-away pair per pytest session.

Why real servers: the transports must be checked against what mail software really says
(EHLO keywords, SASL, STARTTLS, size limits, IMAP literals, POP3 dot-stuffing), not against
our own idea of it. See docs/mail-servers.md for the facts this file relies on.

Layout: each session gets a slot directory under STATE_ROOT holding a throw-away CA and server
certificate, a Postfix config/queue, a Dovecot config and the shared Maildir tree:
Postfix `virtual` delivers into MAIL/<user>/, and Dovecot serves the same directories over
IMAP and POP3. Nothing is ever delivered anywhere else: every non-local transport is `error`.

Sessions run side by side (several engineers share one machine), so ports are free ones
picked by the kernel and each session claims one of SLOTS fixed directories by holding a
lock on it. The directories are fixed because Postfix takes `-c DIR` only for directories
listed in the system main.cf, and every edit of main.cf makes every Postfix command on the
machine wait about 2 s (Postfix waits for a recently changed main.cf to settle): the slots
are registered once, idempotently. A slot whose lock is free but whose directory is not
empty belongs to a session that died; the next session stops what it left running and
empties it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

HOST = "127.0.0.1"
DOMAIN = "example.test"
# tmpfs when there is one: both servers fsync every message, and on this shared VM disk that
# made delivery 3x slower (200 messages over one connection: 0.67 s on /tmp, 0.19 s here).
STATE_ROOT = Path("/dev/shm" if os.path.isdir("/dev/shm") else "/tmp") / "mimekit-servers"
# One lock for every session on the machine, whatever its STATE_ROOT: it guards claiming
# slots and edits of the system main.cf, which all sessions share.
GLOBAL_LOCK = Path("/tmp/mimekit-servers.lock")
SLOTS = 16
SYSTEM_MAIN_CF = Path("/etc/postfix/main.cf")
# Postfix `virtual` and Dovecot's mail processes both run as nobody:nogroup.
VMAIL_UID = VMAIL_GID = 65534
# Login users (Dovecot passdb and Postfix SASL through Dovecot's auth socket).
USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}
# Mailboxes Postfix delivers to; carol can receive but has no login.
MAILBOXES = ("alice", "bob", "carol")
SMALL_SIZE_LIMIT = 100_000
# A recipient Postfix always answers with a 4xx, for per-recipient temporary failures.
TEMPFAIL_RECIPIENT = f"busy@{DOMAIN}"
# Postfix accepts mail for this domain and relays it to `mimekit serve` once a test says on which
# port (relay_serve_domain); until then such mail waits in the Postfix queue.
SERVE_DOMAIN = "serve.test"
# Start-up takes about 1 s, also with other suites busy on both cores; a server that exits
# is noticed at once, so this only bounds one that hangs.
STARTUP_DEADLINE = 60.0

# Header fields Postfix puts above the message (virtual delivery, then smtpd's Received).
PREPENDED_FIELDS = (b"return-path:", b"x-original-to:", b"delivered-to:")

PORT_NAMES = ("smtp_plain", "submission", "smtps", "smtp_no_tls", "smtp_small", "smtp_switchable",
              "imap", "imaps", "pop3", "pop3s", "imap_no_tls", "pop3_no_tls")


@dataclass
class MailServers:
    """What tests see: where to connect, whom to log in as, and the mailboxes on disk.

    SMTP ports (Postfix, all accept mail for @example.test only; anything else is refused
    with 554 5.7.1 relay access denied, unknown local parts with 550 5.1.1):
      smtp_plain   no auth, STARTTLS offered but optional
      submission   STARTTLS required before anything, AUTH PLAIN/LOGIN required to send
      smtps        implicit TLS (wrapper mode), AUTH required to send
      smtp_no_tls  no STARTTLS advertised, AUTH offered in the clear: for testing that a
                   client refuses to send credentials there
      smtp_small   like smtp_plain with message_size_limit = SMALL_SIZE_LIMIT (SIZE 100000)
      smtp_switchable  like smtp_plain, for outages a test makes: stop_switchable_listener()
                   closes it (connections refused) and start_switchable_listener() opens it
                   again; set_switchable_access() gives recipients a reply (450 ...) there
      Per recipient: nobody@example.test 550 5.1.1, x@elsewhere.invalid 554 5.7.1,
      tempfail_recipient (busy@example.test) 450 4.2.1.
      Mail for @serve.test is accepted and relayed to a `mimekit serve` on 127.0.0.1 once
      relay_serve_domain(port) names its port; it waits in the Postfix queue until then.
      Postfix prepends Return-Path, X-Original-To, Delivered-To and Received (see as_sent),
      adds Message-Id and Date when missing, and qualifies bare addresses in From/To/Cc with
      @mx.example.test (127.0.0.1 is a "local" client to it, as a submission client is).
    IMAP/POP3 ports (Dovecot): imap and pop3 offer STARTTLS/STLS; imaps and pop3s are
    implicit TLS. Plain-text login is allowed before TLS too: refusing it is the client's job.
    imap_no_tls and pop3_no_tls (a second Dovecot, same mailboxes) offer no STARTTLS/STLS.
    Login users: `users` (alice, bob); mailboxes: alice, bob, carol (carol cannot log in).
    Messages are stored in MAIL/<user>/{new,cur} with LF line ends, as Maildir does.
    """

    host: str
    smtp_plain: int
    submission: int
    smtps: int
    smtp_no_tls: int
    smtp_small: int
    smtp_switchable: int
    imap: int
    imaps: int
    pop3: int
    pop3s: int
    imap_no_tls: int
    pop3_no_tls: int
    ca_file: Path
    mail_root: Path
    postfix_log: Path
    dovecot_log: Path
    dovecot_conf: Path
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    domain: str = DOMAIN
    small_size_limit: int = SMALL_SIZE_LIMIT
    tempfail_recipient: str = TEMPFAIL_RECIPIENT
    postfix_config: Path | None = None   # the Postfix -c directory, for the switchable listener

    def set_switchable_access(self, rules: dict[str, str]) -> None:
        """Replace the smtp_switchable port's recipient rules ({address: "450 4.2.0 text"},
        check_recipient_access syntax; {} lifts them all), and return once that port answers
        RCPT with them (a reload lets running smtpd processes finish first)."""
        access = self.postfix_config / "switchable_access"
        previous = set(_read_access(access))
        _write(access, "".join(f"{address} {action}\n" for address, action in rules.items()))
        self._reload_postfix()
        expected = {address: int(rules[address].split()[0]) if address in rules else 250
                    for address in previous | set(rules)}
        _wait_until(lambda: all(_rcpt_code(self.host, self.smtp_switchable, address) == code
                                for address, code in expected.items()),
                    f"recipient rules {rules} on port {self.smtp_switchable}")

    def stop_switchable_listener(self) -> None:
        """Close the smtp_switchable port (a server that is down: connections refused)."""
        self._switch_listener(enabled=False)

    def start_switchable_listener(self) -> None:
        self._switch_listener(enabled=True)

    def _switch_listener(self, enabled: bool) -> None:
        master_cf = self.postfix_config / "master.cf"
        line = f"{self.host}:{self.smtp_switchable} inet"
        lines = master_cf.read_text().splitlines(keepends=True)
        master_cf.write_text("".join((entry.lstrip("#") if enabled else "#" + entry.lstrip("#"))
                                     if entry.lstrip("#").startswith(line) else entry for entry in lines))
        _date_back(master_cf)
        self._reload_postfix()
        _wait_until(lambda: _port_open(self.host, self.smtp_switchable) == enabled,
                    f"port {self.smtp_switchable} {'open' if enabled else 'closed'}")

    def relay_serve_domain(self, port: int) -> None:
        """Relay mail for @serve.test over SMTP to 127.0.0.1:port (opportunistic STARTTLS). A
        message routed just after this by a Postfix process that has not reloaded yet is
        deferred: flush_queue() while waiting for it."""
        _write(self.postfix_config / "transport", f"{SERVE_DOMAIN} smtp:[{self.host}]:{port}\n")
        self._reload_postfix()

    def flush_queue(self) -> None:
        """Deliver deferred mail now instead of at the next queue run (minutes away)."""
        subprocess.run(["postqueue", "-c", str(self.postfix_config), "-f"], check=True,
                       capture_output=True, timeout=60)

    def _reload_postfix(self) -> None:
        subprocess.run(["postfix", "-c", str(self.postfix_config), "reload"], check=True,
                       capture_output=True, timeout=60)

    def address(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def maildir(self, user: str) -> Path:
        if user not in MAILBOXES:
            raise KeyError(f"no mailbox {user!r}; there are {MAILBOXES}")
        return self.mail_root / user

    def messages(self, user: str) -> list[Path]:
        """Messages in the user's INBOX (new/ and cur/), ordered by delivery second, then name.
        A message Dovecot moves from new/ to cur/ meanwhile is counted once, under cur/."""
        by_name = {}
        for sub in ("new", "cur"):
            for path in (self.maildir(user) / sub).iterdir():
                by_name[path.name.split(":")[0]] = path
        return sorted(by_name.values(), key=lambda p: (int(p.name.split(".")[0]), p.name))

    def wait_for_messages(self, user: str, count: int, timeout: float = 30) -> list[Path]:
        """Poll until at least `count` messages are in the mailbox (Postfix delivers
        asynchronously); fail with the Postfix log tail if they do not arrive in time."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(user)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{user}: {len(found)} of {count} messages after {timeout}s\n"
                    f"--- {self.postfix_log} ---\n{_tail(self.postfix_log)}")
            time.sleep(0.05)

    def wait_for_token(self, user: str, token: str, count: int = 1, timeout: float = 30) -> list[bytes]:
        """The messages in the mailbox that carry `token`, once at least `count` of them are there
        (count=0: as they are now). Waiting for a count of ALL messages passes early when the
        mailbox holds other tests' mail; fail with the Postfix log tail if they do not arrive in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = [data for data in (p.read_bytes() for p in self.messages(user))
                         if token.encode() in data]
            except FileNotFoundError:   # Dovecot moved one from new/ to cur/ meanwhile: look again
                found = None
            if found is not None and len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{user}: {len(found or [])} of {count} messages carrying {token} after {timeout}s\n"
                    f"--- {self.postfix_log} ---\n{_tail(self.postfix_log)}")
            time.sleep(0.05)

    def clear_mailbox(self, user: str) -> None:
        """Expunge every message through Dovecot itself: files unlinked behind its back can
        linger in its index (seen here: a POP3 STAT counting a deleted message). UIDs keep
        increasing and UIDVALIDITY stays, as on a real server."""
        self.maildir(user)  # known mailbox
        result = subprocess.run(
            ["doveadm", "-c", str(self.dovecot_conf), "expunge", "-u", user,
             "mailbox", "INBOX", "all"], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"doveadm expunge for {user} failed: {result.stderr.strip()}")

    def as_sent(self, path: Path) -> bytes:
        """A message delivered by Postfix as the client sent it: the fields Postfix put above
        it removed and CRLF line ends restored. Fields it adds inside the header (Message-Id,
        Date when missing) stay, so compare messages that have them."""
        lines = path.read_bytes().split(b"\n")
        i = 0
        while lines[i].lower().startswith(PREPENDED_FIELDS):
            i += 1
        if not lines[i].startswith(b"Received: "):
            raise ValueError(f"{path} was not delivered by Postfix")
        i += 1
        while lines[i][:1] in (b" ", b"\t"):
            i += 1
        return b"\r\n".join(lines[i:])

    def deliver_directly(self, user: str, message: bytes) -> Path:
        """Put a message straight into the Maildir (tmp, then rename into new/), owned
        like a Postfix delivery, for fetch tests that do not need Postfix."""
        box = self.maildir(user)
        name = f"{int(time.time())}.M{uuid.uuid4().hex}.mimekit-test"
        tmp = box / "tmp" / name
        with open(tmp, "xb") as f:
            f.write(message)
            f.flush()
            os.fsync(f.fileno())
        os.chown(tmp, VMAIL_UID, VMAIL_GID)
        final = box / "new" / name
        os.rename(tmp, final)
        return final


def servers_available() -> str | None:
    """Why the servers cannot run here, or None when they can."""
    for tool in ("postfix", "postconf", "dovecot", "doveadm"):
        if shutil.which(tool) is None:
            return (f"{tool} is not installed"
                    " (apt-get install postfix dovecot-imapd dovecot-pop3d)")
    if os.geteuid() != 0:
        return "the test Postfix and Dovecot need root (Postfix -c DIR, chown to nobody)"
    return None


@pytest.fixture(scope="session")
def mail_servers():
    """Postfix and Dovecot for the whole session; stopped, and their slot emptied, at the end."""
    reason = servers_available()
    if reason:
        pytest.skip(reason)
    instance = ServerInstance.start()
    try:
        yield instance.servers
    finally:
        instance.stop()


@dataclass(frozen=True)
class Certificates:
    ca: Path     # what clients trust
    cert: Path   # the server's chain, for localhost and 127.0.0.1
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A private CA and a leaf for localhost and 127.0.0.1 in `directory` (ca.pem, server.pem,
    server.key): clients verify for real instead of switching verification off."""
    ca = trustme.CA(organization_name="mimekit test CA")
    # A common name too: fetchmail fails a certificate whose subject has none, whatever its
    # subjectAltName says.
    leaf = ca.issue_cert("localhost", HOST, common_name="localhost")
    made = Certificates(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    ca.cert_pem.write_to_path(str(made.ca))
    with open(made.cert, "wb") as f:
        for pem in leaf.cert_chain_pems:
            f.write(pem.bytes())
    leaf.private_key_pem.write_to_path(str(made.key))
    made.key.chmod(0o600)
    return made


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({e})"


def _free_ports(count: int) -> list[int]:
    """Ports the kernel considers free right now; all held open together so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)


class ServerInstance:
    """The processes and files behind one MailServers; start() and stop() are the lifecycle."""

    def __init__(self, root: Path, lock_file):
        self.root = root
        self.lock_file = lock_file  # held (flock) while this session lives
        self.postfix_dir = root / "postfix"
        # Outside the config directory: Postfix's start-up check warns (slowly, one
        # postlog process per line) about every non-root file below it.
        self.postfix_queue = root / "postfix-queue"
        self.dovecot_conf = root / "dovecot" / "dovecot.conf"
        self.dovecot_no_tls_conf = root / "dovecot-no-tls" / "dovecot.conf"
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.startup_seconds: float | None = None
        ports = dict(zip(PORT_NAMES, _free_ports(len(PORT_NAMES))))
        self.servers = MailServers(
            host=HOST, ca_file=root / "ca.pem", mail_root=root / "mail",
            postfix_log=root / "postfix.log", dovecot_log=root / "dovecot.log",
            dovecot_conf=self.dovecot_conf, postfix_config=self.postfix_dir, **ports)

    @classmethod
    def start(cls) -> "ServerInstance":
        started = time.monotonic()
        root, lock_file = _claim_slot(started + STARTUP_DEADLINE)
        instance = cls(root, lock_file)
        try:
            instance._configure()
            instance._launch()
        except BaseException:
            instance.stop()
            raise
        instance.startup_seconds = time.monotonic() - started
        return instance

    # --- files -------------------------------------------------------------------------

    def _configure(self) -> None:
        s = self.servers
        self.root.chmod(0o755)  # nobody (mail), postfix and dovecot all traverse it
        self._make_certificates()
        s.mail_root.mkdir()
        os.chown(s.mail_root, VMAIL_UID, VMAIL_GID)
        for user in MAILBOXES:
            for sub in ("", "new", "cur", "tmp"):
                d = s.mail_root / user / sub
                d.mkdir(exist_ok=True)
                os.chown(d, VMAIL_UID, VMAIL_GID)
        self._configure_postfix()
        self._configure_dovecot()

    def _make_certificates(self) -> None:
        make_certificates(self.root)

    def _configure_postfix(self) -> None:
        s, d = self.servers, self.postfix_dir
        queue, data = self.postfix_queue, self.root / "postfix-data"
        for directory in (d, queue, data):
            directory.mkdir()
        # Dovecot creates its auth socket in queue/private before Postfix starts.
        (queue / "private").mkdir(mode=0o700)
        shutil.chown(queue / "private", "postfix", "root")
        shutil.chown(data, "postfix", "postfix")
        _write(d / "vmailbox", "".join(f"{u}@{DOMAIN} {u}/\n" for u in MAILBOXES))
        _write(d / "switchable_access", "")
        _write(d / "transport", f"{SERVE_DOMAIN} retry:4.4.1 no mimekit serve to relay to yet\n")
        _write(d / "recipient_access",
               f"{TEMPFAIL_RECIPIENT} 450 4.2.1 mailbox busy (mimekit test server)\n")
        error = "error:5.7.1 mimekit test server delivers to @example.test only"
        _write(d / "main.cf", f"""\
# mimekit test server: accepts mail for @{DOMAIN} into Maildirs, delivers nowhere else.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = {s.postfix_log}
maillog_file_prefixes = {self.root}
myhostname = mx.{DOMAIN}
mydestination =
inet_interfaces = {HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
append_dot_mydomain = no
biff = no
default_transport = {error}
relay_transport = {error}
local_transport = {error}
smtpd_relay_restrictions = reject_unauth_destination
relay_domains = {SERVE_DOMAIN}
transport_maps = texthash:{d}/transport
smtp_tls_security_level = may
smtpd_recipient_restrictions = check_recipient_access texthash:{d}/recipient_access
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {s.mail_root}
virtual_mailbox_maps = texthash:{d}/vmailbox
virtual_uid_maps = static:{VMAIL_UID}
virtual_gid_maps = static:{VMAIL_GID}
virtual_minimum_uid = 1
message_size_limit = 0
mailbox_size_limit = 0
virtual_mailbox_limit = 0
# Benchmarks push messages faster than one delivery agent keeps up; no throttling.
in_flow_delay = 0s
smtpd_tls_cert_file = {self.root}/server.pem
smtpd_tls_key_file = {self.root}/server.key
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
""")
        auth = ("-o smtpd_sasl_auth_enable=yes"
                " -o smtpd_relay_restrictions=permit_sasl_authenticated,reject")
        encrypt = "-o smtpd_tls_security_level=encrypt"
        smtpd_options = {
            s.smtp_plain: "",
            s.submission: f"{encrypt} {auth}",
            s.smtps: f"-o smtpd_tls_wrappermode=yes {encrypt} {auth}",
            s.smtp_no_tls: f"-o smtpd_tls_security_level=none -o smtpd_tls_auth_only=no {auth}",
            s.smtp_small: f"-o message_size_limit={SMALL_SIZE_LIMIT}",
            s.smtp_switchable: "-o smtpd_recipient_restrictions="
                               f"check_recipient_access,texthash:{d}/switchable_access",
        }
        listeners = "".join(f"{HOST}:{port} inet n - n - - smtpd {options}\n"
                            for port, options in smtpd_options.items())
        # No service is chrooted (Debian's master.cf chroots; our queue has no /etc copy).
        _write(d / "master.cf", f"""\
{listeners}\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
smtp unix - - n - - smtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
""")
        for name in ("main.cf", "master.cf"):
            _date_back(d / name)

    def _configure_dovecot(self) -> None:
        """Two Dovecots on the same mailboxes: the real one (STARTTLS and implicit TLS), and
        one with TLS off, whose capabilities lack STARTTLS/STLS, for testing that clients
        refuse to log in there. (Dovecot cannot switch TLS off for a single listener.)"""
        s = self.servers
        users = self.root / "dovecot-users"
        _write(users, "".join(f"{u}:{{PLAIN}}{pw}\n" for u, pw in USERS.items()), 0o640)
        shutil.chown(users, "root", "dovecot")
        dh = Path("/usr/share/dovecot/dh.pem")
        tls = f"""\
ssl = yes
ssl_cert = <{self.root}/server.pem
ssl_key = <{self.root}/server.key
{f"ssl_dh = <{dh}" if dh.exists() else ""}
"""
        self._write_dovecot_conf(
            self.dovecot_conf, tls,
            imap={"imap": (s.imap, "no"), "imaps": (s.imaps, "yes")},
            pop3={"pop3": (s.pop3, "no"), "pop3s": (s.pop3s, "yes")},
            auth_socket=self.postfix_queue / "private" / "auth", users=users)
        self._write_dovecot_conf(
            self.dovecot_no_tls_conf, "ssl = no\nlogin_log_format = no-TLS instance: %$: %s\n",
            imap={"imap": (s.imap_no_tls, "no")}, pop3={"pop3": (s.pop3_no_tls, "no")},
            auth_socket=None, users=users)

    def _write_dovecot_conf(self, path: Path, tls: str, imap: dict, pop3: dict,
                            auth_socket: Path | None, users: Path) -> None:
        s = self.servers
        path.parent.mkdir()

        def listeners(service: str, ports: dict) -> str:
            inner = "".join(
                f"  inet_listener {name} {{\n    port = {port}\n    ssl = {ssl}\n  }}\n"
                for name, (port, ssl) in ports.items())
            return f"service {service} {{\n{inner}}}\n"

        # Postfix asks this socket (smtpd_sasl_type = dovecot) to check SMTP AUTH.
        auth = (f"service auth {{\n  unix_listener {auth_socket} {{\n    mode = 0660\n"
                f"    user = postfix\n    group = postfix\n  }}\n}}\n") if auth_socket else ""
        _write(path, f"""\
# mimekit test server: IMAP and POP3 over the Maildirs Postfix delivers into.
protocols = imap pop3
listen = {HOST}
base_dir = {path.parent}/run
state_dir = {path.parent}/state
log_path = {s.dovecot_log}
{tls}
# Refusing plain-text login before TLS is what the clients under test must do themselves.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Wrong-password tests must not slow down the logins after them: no failure delay, and
# no per-IP auth penalty (every test client is 127.0.0.1; see service anvil below).
auth_failure_delay = 0
# Benchmarks and kill-and-resume tests open many sessions in a row.
mail_max_userip_connections = 100
first_valid_uid = 1
mail_location = maildir:{s.mail_root}/%n
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {users}
}}
userdb {{
  driver = static
  # allow_all_users: doveadm may act on carol, who receives mail but cannot log in.
  args = uid=nobody gid=nogroup home={s.mail_root}/%n allow_all_users=yes
}}
{listeners("imap-login", imap)}{listeners("pop3-login", pop3)}\
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{auth}""")

    # --- processes ---------------------------------------------------------------------

    def _launch(self) -> None:
        """Dovecot first (Postfix's SASL socket comes from it), then Postfix; wait for ports."""
        s = self.servers
        commands = [
            ("dovecot", ["dovecot", "-F", "-c", str(self.dovecot_conf)], s.dovecot_log,
             (s.imap, s.imaps, s.pop3, s.pop3s)),
            ("dovecot-no-tls", ["dovecot", "-F", "-c", str(self.dovecot_no_tls_conf)],
             s.dovecot_log, (s.imap_no_tls, s.pop3_no_tls)),
            ("postfix", ["postfix", "-c", str(self.postfix_dir), "start-fg"], s.postfix_log,
             (s.smtp_plain, s.submission, s.smtps, s.smtp_no_tls, s.smtp_small, s.smtp_switchable)),
        ]
        for name, argv, _, _ in commands:
            out = open(self.root / f"{name}.out", "wb")
            self.processes.append((name, subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)))
            out.close()
        deadline = time.monotonic() + STARTUP_DEADLINE
        for (name, _, log, ports), (_, proc) in zip(commands, self.processes):
            for port in ports:
                _wait_for_port(port, proc, name, [self.root / f"{name}.out", log], deadline)

    def sessions(self) -> list[int]:
        """Session ids of every server process: each was started as a session leader, and
        Postfix's master makes a session of its own."""
        master_pid = _read_pid(self.postfix_queue / "pid" / "master.pid")
        return [proc.pid for _, proc in self.processes] + ([master_pid] if master_pid else [])

    def stop(self) -> None:
        """Stop the servers, make sure none of their processes is left, remove the files."""
        sessions = self.sessions()
        for name, proc in self.processes:
            if proc.poll() is None:
                if name == "postfix":
                    subprocess.run(["postfix", "-c", str(self.postfix_dir), "stop"],
                                   capture_output=True, timeout=30)
                else:
                    proc.terminate()
        for _, proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sid in sessions:
            _kill_session(sid)
        _empty(self.root)
        self.lock_file.close()


def _wait_for_port(port: int, proc: subprocess.Popen, name: str, logs: list[Path],
                   deadline: float) -> None:
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError as e:
            problem = None
            if proc.poll() is not None:
                problem = f"{name} exited with status {proc.returncode}"
            elif time.monotonic() > deadline:
                problem = f"{name} not listening on {HOST}:{port} after {STARTUP_DEADLINE}s ({e})"
            if problem:
                tails = "\n".join(f"--- {log} ---\n{_tail(log)}" for log in logs)
                raise RuntimeError(f"{problem}\n{tails}") from None
            time.sleep(0.05)


def _date_back(path: Path) -> None:
    """Postfix waits until main.cf and master.cf are a few seconds old, in case an editor is
    still writing them (1.5 s at every start or reload); ours are complete, so date them back."""
    past = time.time() - 60
    os.utime(path, (past, past))


def _read_access(path: Path) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in path.read_text().splitlines() if line)


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
        return True
    except OSError:
        return False


def _rcpt_code(host: str, port: int, address: str) -> int | None:
    """The code Postfix answers RCPT TO:<address> with on `port` (no message is sent)."""
    import smtplib
    try:
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("")
            return smtp.rcpt(address)[0]
    except (OSError, smtplib.SMTPException):
        return None


def _wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Postfix: no {what} after {timeout}s")
        time.sleep(0.1)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def session_processes(sid: int) -> list[int]:
    """Live processes in session `sid` (zombies are gone already, just not yet reaped)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z" and os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                pass  # exited while we looked
    return pids


def _kill_session(sid: int) -> None:
    """Kill whatever a server left running in its session, so a server that ignored its
    stop leaves nothing behind."""
    for pid in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- slots, stale leftovers and the system main.cf ------------------------------------


class _global_lock:
    """Serialises claiming slots, reaping and main.cf edits between concurrent sessions."""

    def __enter__(self):
        self.file = open(GLOBAL_LOCK, "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        STATE_ROOT.mkdir(mode=0o755, exist_ok=True)

    def __exit__(self, *exc):
        self.file.close()


def _slot(n: int) -> Path:
    return STATE_ROOT / f"slot-{n:02d}"


def _claim_slot(deadline: float):
    """Lock a free slot and return its (fresh, empty) directory and the held lock file.
    Every other free slot with leftovers is cleaned on the way."""
    while True:
        claimed = None
        with _global_lock():
            _register_slots()
            for n in range(SLOTS):
                lock = open(f"{_slot(n)}.lock", "w")
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()  # a live session
                    continue
                _clean_dead_session(_slot(n))
                if claimed is None:
                    claimed = (_slot(n), lock)
                else:
                    lock.close()
        if claimed:
            return claimed
        if time.monotonic() > deadline:
            raise RuntimeError(f"all {SLOTS} test server slots in {STATE_ROOT} are in use")
        time.sleep(0.5)


def _clean_dead_session(root: Path) -> None:
    """Stop whatever a session that died without teardown left running, remove its files."""
    root.mkdir(mode=0o755, exist_ok=True)
    if not any(root.iterdir()):
        return
    if (root / "postfix" / "main.cf").exists():
        subprocess.run(["postfix", "-c", str(root / "postfix"), "stop"],
                       capture_output=True, timeout=30)
    for pid_file in root.glob("dovecot*/run/master.pid"):
        pid = _read_pid(pid_file)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
        except OSError:
            continue
        if str(root).encode() in cmdline:  # the pid still belongs to that dovecot
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not session_processes(pid):
                    break
                time.sleep(0.1)
            _kill_session(pid)  # it was started as a session leader
    _empty(root)


def _empty(root: Path) -> None:
    """Remove a slot's contents; the slot directory, like its main.cf entry, is permanent."""
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _register_slots() -> None:
    """Make sure every slot's Postfix directory is in alternate_config_directories of the
    system main.cf, keeping other entries; main.cf is rewritten only when one is missing."""
    if not SYSTEM_MAIN_CF.exists():  # the package was installed with "No configuration"
        SYSTEM_MAIN_CF.write_text("")  # (never touch() it: a new mtime means a 2 s wait)
    current = subprocess.run(["postconf", "-h", "alternate_config_directories"],
                             capture_output=True, text=True, check=True).stdout
    entries = current.replace(",", " ").split()
    missing = [str(_slot(n) / "postfix") for n in range(SLOTS)
               if str(_slot(n) / "postfix") not in entries]
    if missing:
        subprocess.run(["postconf", "-e", "alternate_config_directories = "
                        + " ".join(entries + missing)], check=True, capture_output=True)
