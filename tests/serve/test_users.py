"""The users file of `mimekit serve` (mimekit.serve.users) and `mimekit users`: scrypt hashes
that verify, a file that never holds a password, writers that never lose each other's user,
and the exit codes a script sees."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mimekit.errors import ConfigError, NoUserError
from mimekit.serve.users import PasswordHash, Users, add_user, remove_user

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


def mimekit(*args, input=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, stdin=stdin,
                          capture_output=True, timeout=120, cwd=REPO)


def fastest(work, times: int = 3) -> float:
    timings = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def test_add_verify_remove_through_the_command_line(tmp_path):
    users_file = tmp_path / "users"
    added = mimekit("users", "add", str(users_file), "Alice@Example.TEST", input=f"{PASSWORD}\n".encode())
    assert added.returncode == 0 and added.stdout == b""
    assert added.stderr.decode() == f"mimekit users: {users_file}: added alice@example.test\n"
    by_command = mimekit("users", "add", str(users_file), "bob", "--password-command", "echo 's3cret bob'")
    assert by_command.returncode == 0, by_command.stderr

    users = Users.load(str(users_file))
    assert users.names() == ["alice@example.test", "bob"] and "ALICE@example.test" in users
    assert users.verify("alice@example.test", PASSWORD) and users.verify("Alice@EXAMPLE.test", PASSWORD)
    assert users.verify("bob", "s3cret bob")
    assert not users.verify("alice@example.test", PASSWORD + " ") and not users.verify("bob", PASSWORD)
    assert not users.verify("carol", PASSWORD)

    listed = mimekit("users", "list", str(users_file))
    assert listed.returncode == 0 and listed.stdout == b"alice@example.test\nbob\n" and listed.stderr == b""
    removed = mimekit("users", "remove", str(users_file), "BOB")
    assert removed.returncode == 0 and removed.stderr.decode() == f"mimekit users: {users_file}: removed bob\n"
    assert mimekit("users", "list", str(users_file)).stdout == b"alice@example.test\n"
    assert Users.load(str(users_file)).verify("alice@example.test", PASSWORD)


def test_add_of_an_existing_name_replaces_its_password_and_says_so(tmp_path):
    users_file = tmp_path / "users"
    mimekit("users", "add", str(users_file), "alice", input=b"old\n")
    replaced = mimekit("users", "add", str(users_file), "alice", input=b"new\r\n")
    assert replaced.returncode == 0
    assert replaced.stderr.decode() == f"mimekit users: {users_file}: replaced the password of alice\n"
    users = Users.load(str(users_file))
    assert users.names() == ["alice"] and users.verify("alice", "new") and not users.verify("alice", "old")


def test_the_file_never_holds_the_password_and_is_private(tmp_path):
    users_file = tmp_path / "users"
    add_user(str(users_file), "alice", PASSWORD)
    add_user(str(users_file), "alice", PASSWORD)   # rewritten: still private
    text = users_file.read_bytes()
    assert PASSWORD.encode() not in text and b"horse" not in text
    assert text.startswith(b"alice:$scrypt$ln=15,r=8,p=1$") and text.endswith(b"\n")
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert not [name for name in os.listdir(tmp_path) if name != "users"]   # no temporary left


def test_a_file_others_can_read_still_works_and_list_warns(tmp_path):
    users_file = tmp_path / "users"
    add_user(str(users_file), "alice", PASSWORD)
    users_file.chmod(0o644)
    assert Users.load(str(users_file)).readable_by_others
    listed = mimekit("users", "list", "--json", str(users_file))
    assert listed.returncode == 0 and b'"users": [\n    "alice"\n  ]' in listed.stdout
    assert listed.stderr.decode() == (f"mimekit users: warning: {users_file} is readable by group or others "
                                      f"(it holds password hashes: chmod 600 {users_file})\n")


def test_an_unknown_user_costs_what_a_wrong_password_does(tmp_path):
    """The time of a refusal must not tell which names exist: an unknown name is checked
    against a dummy hash of the same parameters."""
    users_file = tmp_path / "users"
    add_user(str(users_file), "alice", PASSWORD)
    users = Users.load(str(users_file))
    known = fastest(lambda: users.verify("alice", "wrong"))
    unknown = fastest(lambda: users.verify("mallory", "wrong"))
    assert known > 0.01   # scrypt, not a fast hash
    assert 0.5 < unknown / known < 2, (known, unknown)


def test_stronger_parameters_written_later_still_verify(tmp_path):
    users_file = tmp_path / "users"
    users_file.write_text(f"# made stronger by hand\nalice:{PasswordHash.make(PASSWORD, log2_n=16)}\n")
    users = Users.load(str(users_file))
    assert users.verify("alice", PASSWORD)
    add_user(str(users_file), "bob", "x")
    assert users_file.read_text().startswith("# made stronger by hand\nalice:$scrypt$ln=16,r=8,p=1$")


@pytest.mark.parametrize("line", [
    "alice",                                                    # no hash
    "alice:secret",                                             # a password, not a hash
    "alice:$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0$",            # no digest
    "alice:$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 43,  # 128 GiB of scrypt memory
    "al ice:$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 43,
])
def test_a_damaged_line_is_a_config_error_naming_it(tmp_path, line):
    users_file = tmp_path / "users"
    add_user(str(users_file), "bob", "x")
    users_file.write_text(users_file.read_text() + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=f"^{users_file}:3: expected NAME:"):
        Users.load(str(users_file))
    listed = mimekit("users", "list", str(users_file))
    assert listed.returncode == 78 and listed.stderr.decode().startswith(f"mimekit users: {users_file}:3: ")
    added = mimekit("users", "add", str(users_file), "carol", input=b"pw\n")
    assert added.returncode == 78 and b"carol" not in users_file.read_bytes()   # never rewritten


def test_a_name_listed_twice_is_a_config_error(tmp_path):
    users_file = tmp_path / "users"
    entry = f"alice:{PasswordHash.make('x')}\n"
    users_file.write_text(entry + entry.replace("alice", "ALICE"))
    with pytest.raises(ConfigError, match=f"^{users_file}:2: user 'alice' is listed twice"):
        Users.load(str(users_file))


# A writer process adding its users as fast as it can: cheap scrypt parameters, so that the
# writers' read-change-rename windows overlap (with the real cost they seldom would).
FAST_WRITER = """
import sys
from mimekit.serve import users
make = users.PasswordHash.make.__func__
users.PasswordHash.make = classmethod(lambda cls, password: make(cls, password, log2_n=2, r=1))
path, prefix = sys.argv[1:]
for number in range(40):
    users.add_user(path, f"{prefix}{number}", "pw")
"""


def test_concurrent_adds_lose_no_user(tmp_path):
    """Each writer reads, changes and renames under a flock of the file: without it, two
    writers reading the same version would each drop the other's users."""
    users_file = tmp_path / "users"
    writers = [subprocess.Popen([sys.executable, "-c", FAST_WRITER, str(users_file), f"writer{number}-"], cwd=REPO)
               for number in range(4)]
    assert [writer.wait(timeout=120) for writer in writers] == [0] * 4
    assert len(Users.load(str(users_file))) == 160
    by_command = [subprocess.Popen([sys.executable, "-m", "mimekit_cli", "users", "add", str(users_file),
                                    f"user{number}"], stdin=subprocess.PIPE, cwd=REPO) for number in range(4)]
    for number, writer in enumerate(by_command):
        writer.communicate(f"pw-{number}\n".encode(), timeout=120)
    users = Users.load(str(users_file))
    assert len(users) == 164 and users.verify("user3", "pw-3") and users.verify("writer2-39", "pw")


def test_remove_of_an_unknown_user_is_67_and_of_a_missing_file_66(tmp_path):
    users_file = tmp_path / "users"
    add_user(str(users_file), "alice", PASSWORD)
    with pytest.raises(NoUserError):
        remove_user(str(users_file), "bob")
    unknown = mimekit("users", "remove", str(users_file), "bob")
    assert unknown.returncode == 67 and unknown.stderr.decode() == f"mimekit users: {users_file}: no user 'bob'\n"
    missing = mimekit("users", "remove", str(tmp_path / "none"), "bob")
    assert missing.returncode == 66 and not (tmp_path / "none").exists()
    assert b"67" in mimekit("users", "remove", "--help").stdout


@pytest.mark.parametrize("name", ["a:b", "a b", "", "caf\u00e9", "x" * 255])
def test_a_bad_name_is_a_usage_error_before_any_password_is_read(tmp_path, name):
    added = mimekit("users", "add", str(tmp_path / "users"), name, "--password-command", "exit 3")
    assert added.returncode == 64 and b"printable ASCII without ':'" in added.stderr
    assert not (tmp_path / "users").exists()


def test_the_password_is_never_prompted_for(tmp_path):
    """stdin a terminal: refused at once (no prompt ever, docs/conventions.md)."""
    controller, terminal = os.openpty()
    try:
        added = mimekit("users", "add", str(tmp_path / "users"), "alice", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert added.returncode == 64 and b"never prompts" in added.stderr


def test_an_empty_password_or_a_failed_command_adds_nobody(tmp_path):
    users_file = tmp_path / "users"
    assert mimekit("users", "add", str(users_file), "alice", input=b"").returncode == 64
    failed = mimekit("users", "add", str(users_file), "alice", "--password-command", "echo oops >&2; exit 2")
    assert failed.returncode == 78 and b"password command failed with exit status 2: oops" in failed.stderr
    assert not users_file.exists()


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", ".hidden"])
def test_a_name_that_cannot_be_a_mailbox_directory_is_refused(tmp_path, name):
    """A name is the directory of its mailbox under serve's root: one that could leave the
    root or hide itself there would be a user who can never receive mail."""
    added = mimekit("users", "add", str(tmp_path / "users"), name, "--password-command", "exit 3")
    assert added.returncode == 64 and b"printable ASCII without ':'" in added.stderr
    (tmp_path / "users").write_text(f"{name}:{PasswordHash.make('x', log2_n=4)}\n")
    with pytest.raises(ConfigError, match="expected NAME:"):
        Users.load(str(tmp_path / "users"))


def test_a_name_that_only_lower_cases_to_a_user_is_not_that_user(tmp_path):
    """str.lower() maps some non-ASCII letters to ASCII ones (KELVIN SIGN to k): names are
    ASCII, so such a name is nobody, neither for a login nor as a recipient."""
    users_file = tmp_path / "users"
    add_user(str(users_file), "kelly", PASSWORD)
    users = Users.load(str(users_file))
    assert users.verify("KELLY", PASSWORD) and "KELLY" in users
    assert not users.verify("\u212aelly", PASSWORD) and "\u212aelly" not in users
