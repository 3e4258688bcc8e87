"""Every `--json` output against its JSON Schema in docs/schemas/ (issue 15): the commands run for
real (files, Maildirs and mboxes here; send, fetch, folders, accounts check and queue run against
the real Postfix and Dovecot of tests/servers.py), and each document or JSON Lines record they
print is validated (draft 2020-12, formats checked), error outputs included. Also: the schema
files are valid and described, and every schema name the code can print has its file."""

import ast
import importlib.util
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from helpers import write_config

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"
SCHEMA_ID_BASE = "https://mimekit.invalid/schemas/"
MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: schemas\r\n"
           b"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\nMessage-ID: <schemas@example.test>\r\n\r\nHello.\r\n")


def load_schemas() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMAS.glob("*.json"))}


def registry(schemas: dict[str, dict]) -> Registry:
    """Every file under its $id, so that "common.json#/$defs/error" resolves."""
    return Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas.values())


SCHEMA_FILES = load_schemas()
REGISTRY = registry(SCHEMA_FILES)


def validate(document: dict) -> str:
    """Validate one document against the file its "schema" names (its first key, as
    docs/conventions.md says); returns that name."""
    assert next(iter(document)) == "schema", document
    name = document["schema"].removeprefix("mimekit.").partition("/")[0]
    assert name in SCHEMA_FILES, f"no docs/schemas/{name}.json for {document['schema']}"
    validator = Draft202012Validator(SCHEMA_FILES[name], registry=REGISTRY, format_checker=FormatChecker())
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(document)]
    assert not errors, f"{document['schema']} document does not match its schema:\n" + "\n".join(errors[:10])
    return name


def documents(stdout: bytes) -> list[dict]:
    """One pretty-printed document, or JSON Lines."""
    text = stdout.decode()
    if text.startswith("{\n"):
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines()]


def mimekit(*args, env, input=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True,
                          timeout=120, cwd=cwd or REPO, env=env)


def valid_output(*args, env, expected_codes=(0,), input=None, cwd=None) -> list[dict]:
    """Run mimekit ARGS --json; every document it prints valid, and at least one printed."""
    result = mimekit(*args, "--json", env=env, input=input, cwd=cwd)
    assert result.returncode in expected_codes, (args, result.returncode, result.stderr)
    assert b"Traceback" not in result.stderr
    printed = documents(result.stdout)
    assert printed, (args, result.stderr)
    for document in printed:
        validate(document)
    return printed


def closed_server() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"smtp://127.0.0.1:{sock.getsockname()[1]}"


def make_maildir(path: Path, messages: dict[str, bytes]) -> Path:
    for folder in ("cur", "new", "tmp"):
        (path / folder).mkdir(parents=True, exist_ok=True)
    for name, data in messages.items():
        (path / name).write_bytes(data)
    return path


@pytest.fixture
def store(tmp_path) -> Path:
    """A Maildir of two messages (one with an attachment and a flag, one defective) and an
    mbox holding the same two."""
    with_attachment = (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: att\r\nMIME-Version: 1.0\r\n"
                       b"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\nMessage-ID: <att@example.test>\r\n"
                       b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                       b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                       b"See attached.\r\nbegin 644 hidden.txt\r\n#86)C\r\n`\r\nend\r\n"
                       b"--b\r\nContent-Type: image/png; name=\"x y.png\"\r\n"
                       b"Content-Disposition: attachment; filename=\"x y.png\"\r\nContent-ID: <img@example.test>\r\n"
                       b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--b--\r\n")
    defective = b"Subject: =?utf-8?q?broken\nFrom: nobody\n\nbody\r\n"
    make_maildir(tmp_path / "box", {"cur/1.host:2,S": with_attachment, "new/2.host": defective})
    (tmp_path / "box.mbox").write_bytes(b"From a@example.test Thu Jan  1 10:00:00 2026\n"
                                        + with_attachment.replace(b"\r\n", b"\n")
                                        + b"\nFrom b@example.test Thu Jan  1 10:00:00 2026\n" + defective)
    (tmp_path / "one.eml").write_bytes(with_attachment)
    return tmp_path


# -- the schema files ------------------------------------------------------------------------------

def test_every_schema_file_is_valid_named_by_its_id_and_described():
    assert "common" in SCHEMA_FILES and len(SCHEMA_FILES) > 1
    for name, schema in SCHEMA_FILES.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"{SCHEMA_ID_BASE}{name}.json"
        assert schema.get("description"), name
        if name != "common":
            assert schema["properties"]["schema"]["const"].startswith(f"mimekit.{name}/"), name
            assert schema["unevaluatedProperties"] is False, f"{name}: documents are closed"
        for where, properties in _property_maps(schema):
            for field, definition in properties.items():
                assert "description" in definition or "$ref" in definition, f"{name}: {where}.{field} is not described"


def _property_maps(node, where="$"):
    """Every "properties" object in a schema, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield where, value
            yield from _property_maps(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _property_maps(value, f"{where}[{index}]")


# Calls whose first argument is the command part of the schema name they print under --json.
JSON_PRINTERS = {"emit_json", "json_line", "fail", "reporting", "ReadingRun", "_report_run"}


SCHEMA_NAME_IN_TEXT = re.compile(r"mimekit\.([a-z][a-z0-9-]*)/[0-9]+")


def emitted_schema_names() -> set[str]:
    """The schema names cli/*.py can print, read from the code: the literal first argument of
    every call that prints JSON, and every "mimekit.NAME/N" written out in a string (a document
    built by hand, a --help text). A name the code computes (an f-string) cannot be checked, so
    it fails here; a variable passes the literal of its caller on (that caller is read too).
    reporting() without as_json prints no JSON."""
    names = set()
    for path in sorted((REPO / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(SCHEMA_NAME_IN_TEXT.findall(node.value))
            if not (isinstance(node, ast.Call) and node.args and _called_name(node) in JSON_PRINTERS):
                continue
            if _called_name(node) == "reporting" and len(node.args) < 2 and not node.keywords:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
            else:
                assert isinstance(first, (ast.Name, ast.Attribute)), (
                    f"{path.name}:{node.lineno}: a JSON schema name must be a literal (or a variable holding one)")
    return names


def _called_name(call: ast.Call) -> str | None:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)


def test_every_schema_name_the_code_prints_has_its_file_and_every_file_a_command():
    names = emitted_schema_names()
    assert {"scan", "show", "check", "decode", "send", "fetch", "folders", "accounts", "queue-list",
            "queue-run", "users"} <= names   # the reading of the code finds the commands known today
    documented = set(SCHEMA_FILES) - {"common"}
    assert names - documented == set(), "schema names printed without a file in docs/schemas/"
    assert documented - names == set(), "files in docs/schemas/ for names no command prints"
    readme = (SCHEMAS / "README.md").read_text()
    for name in names:
        assert f"`{SCHEMA_FILES[name]['properties']['schema']['const']}`" in readme


def test_formats_are_checked():
    """Without rfc3339-validator (jsonschema[format-nongpl]) jsonschema skips date-time silently."""
    assert "date-time" in FormatChecker().checkers, "install jsonschema[format-nongpl] to check date-time"


def test_a_document_with_an_unknown_field_or_a_wrong_version_is_refused():
    """The schemas are closed: a field added to an output without its schema fails the tests."""
    good = {"schema": "mimekit.users/1", "path": "users", "users": ["alice"]}
    validate(good)
    for bad in ({**good, "extra": 1}, {**good, "schema": "mimekit.users/2"}, {**good, "users": "alice"},
                {"schema": "mimekit.users/1", "error": {"code": 66, "kind": "no-input"}},
                {"schema": "mimekit.scan/1", "source": "a.eml", "date": "yesterday"}):
        with pytest.raises(AssertionError):
            validate(bad)


# -- reading commands --------------------------------------------------------------------------------

def test_scan_json_lines_over_a_maildir_an_mbox_and_a_missing_source(store, env):
    records = valid_output("scan", str(store / "box"), f"mbox:{store / 'box.mbox'}", str(store / "missing"),
                           env=env, expected_codes=(66,))
    assert [("error" in record) for record in records] == [False, False, False, False, True]
    assert {record["flags"] for record in records[:2]} == {"S", ""}
    assert records[2]["source"] == f"{store / 'box.mbox'}:0"
    chosen = valid_output("scan", "--fields", "subject,size", str(store / "one.eml"), env=env)
    assert set(chosen[0]) == {"schema", "subject", "size"}


def test_show_json_one_document_and_json_lines_share_source_and_root_part_id(store, env):
    [one] = valid_output("show", str(store / "one.eml"), env=env)
    assert one["source"] == str(store / "one.eml") and one["parts"][0]["id"] == ""
    records = valid_output("show", str(store / "box"), str(store / "missing"), env=env, expected_codes=(66,))
    assert len(records) == 3 and records[-1]["error"]["kind"] == "no-input"
    assert all(record["source"].startswith(str(store)) for record in records)
    assert any(record.get("defects") for record in records)
    [stdin] = valid_output("show", "-", env=env, input=MESSAGE)
    assert stdin["source"] == "-"


def test_show_json_with_other_readings_lists_their_parts(env):
    case = next(case for case in evasion_messages() if case.reading)
    [document] = valid_output("show", "--all-readings", "-", env=env, input=case.message)
    assert any(part.get("reading") == case.reading for part in document["parts"])


def test_check_json_lines_and_a_usage_error(store, env):
    records = valid_output("check", str(store / "box"), str(store / "missing"), env=env, expected_codes=(65, 66))
    assert [record.get("ok") for record in records] == [True, False, None]
    assert records[1]["violations"][0]["part"] == ""
    refused = mimekit("scan", "--json", "--fields", "nothing", str(store / "one.eml"), env=env)
    assert refused.returncode == 64
    [error] = documents(refused.stdout)
    assert validate(error) == "scan" and error["error"]["kind"] == "usage"


def test_decode_json_manifest_for_one_message_and_many(store, env, tmp_path):
    [manifest] = valid_output("decode", "-o", str(tmp_path / "one"), str(store / "one.eml"), env=env)
    assert manifest["source"] == str(store / "one.eml") and manifest["directory"] == str(tmp_path / "one")
    ids = [entry["id"] for entry in manifest["parts"]]
    assert "1.uu1" in ids and "2" in ids
    records = valid_output("decode", "-o", str(tmp_path / "many"), f"mbox:{store / 'box.mbox'}", str(store / "missing"),
                           env=env, expected_codes=(66,))
    assert [record.get("error", {}).get("code") for record in records] == [None, None, 66]
    case = next(case for case in evasion_messages() if case.reading)
    [hidden] = valid_output("decode", "--all-readings", "-o", str(tmp_path / "hidden"), "-", env=env,
                            input=case.message)
    assert any(entry.get("reading") == case.reading for entry in hidden["parts"])
    [refused] = valid_output("decode", "--text", str(store / "one.eml"), env=env, expected_codes=(64,))
    assert refused["error"]["code"] == 64


def evasion_messages():
    """fixtures/evasion.py, imported by path as its docstring says."""
    spec = importlib.util.spec_from_file_location("evasion", REPO / "fixtures" / "evasion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evasion_messages()


# -- local stores, config, queue -----------------------------------------------------------------------

def test_fetch_json_from_a_maildir_into_each_kind_of_output_and_an_error(store, env, tmp_path):
    for output in (f"maildir:{tmp_path / 'copy'}", f"mbox:{tmp_path / 'copy.mbox'}", str(tmp_path / 'files')):
        [report] = valid_output("fetch", f"maildir:{store / 'box'}", "-o", output, env=env)
        assert [entry["key"] for entry in report["fetched"]] == ["1.host", "2.host"]
        assert report["fetched"][0]["flags"] == ["\\Seen"]
    [failed] = valid_output("fetch", f"maildir:{tmp_path / 'nowhere'}", "-o", str(tmp_path / "files"), env=env,
                            expected_codes=(66,))
    assert failed["fetched"] == [] and failed["error"]["kind"] == "no-input"


def test_users_and_accounts_list_json(env, tmp_path):
    users = tmp_path / "users"
    added = mimekit("users", "add", str(users), "alice", "--password-command", "echo pw-alice-1", env=env)
    assert added.returncode == 0, added.stderr
    [listing] = valid_output("users", "list", str(users), env=env)
    assert listing["users"] == ["alice"]
    valid_output("users", "list", str(tmp_path / "missing"), env=env, expected_codes=(66,))
    valid_output("accounts", "list", env=env)   # no config file: no accounts
    write_config(env, 'default = "work"\n[accounts.work]\nsmtp = "smtps://mail.example.test"\n'
                      'imap = "imaps://mail.example.test/INBOX"\nuser = "alice"\npassword = "s3cret-pw"\n'
                      '[accounts.home]\npop3 = "pop3s://bob@pop.example.test"\ntoken_command = "echo t"\n')
    [accounts] = valid_output("accounts", "list", env=env)
    assert [account["name"] for account in accounts["accounts"]] == ["work", "home"]
    valid_output("accounts", "check", "nobody", env=env, expected_codes=(78,))


def test_send_json_into_a_local_maildir_and_a_refused_message(env, tmp_path):
    [sent] = valid_output("send", "--server", f"maildir:{tmp_path / 'delivered'}", "-t", "-", env=env, input=MESSAGE)
    assert [r["accepted"] for r in sent["messages"][0]["recipients"]] == [True]
    [refused] = valid_output("send", "--server", f"maildir:{tmp_path / 'delivered'}", "-t", "-", env=env,
                             input=b"To: bob@example.test\r\nSubject: no sender\r\n\r\nx\r\n", expected_codes=(65,))
    [message] = refused["messages"]
    assert message["error"]["kind"] == "data" and message["recipients"] == []


def test_send_queue_then_queue_list_and_run_json_while_the_server_is_away(env, tmp_path):
    queue = tmp_path / "queue"
    [queued] = valid_output("send", f"--queue={queue}", "--server", closed_server(), "-t", "-", env=env, input=MESSAGE)
    [entry_id] = queued["queued"]
    [listing] = valid_output("queue", "list", str(queue), env=env)
    assert [entry["id"] for entry in listing["entries"]] == [entry_id]
    assert listing["entries"][0]["recipients"][0]["last_reply"]["code"] is None
    assert queued["entries"][0]["recipients"][0]["attempted"] is True
    assert mimekit("queue", "retry", "-d", str(queue), entry_id, env=env).returncode == 0   # due now, not in 5 min
    [run] = valid_output("queue", "run", str(queue), env=env, expected_codes=(75,))
    assert run["deferred"] == 1 and run["entries"][0]["status"] == "queued"
    valid_output("queue", "list", str(tmp_path / "not-a-queue" / "x"), env=env, expected_codes=(0, 66, 73, 78))


# -- against Postfix and Dovecot ---------------------------------------------------------------------

def login(servers) -> list[str]:
    return ["--user", "alice", "--password-command", f"echo {servers.users['alice']}", "--cafile", str(servers.ca_file)]


@pytest.mark.servers
def test_send_json_with_accepted_and_refused_recipients(mail_servers, env):
    server = f"smtp://{mail_servers.host}:{mail_servers.submission}"
    [sent] = valid_output("send", "--server", server, *login(mail_servers), "--to", "bob@example.test",
                          "--to", "nobody@example.test", "-", env=env, input=MESSAGE, expected_codes=(0, 65, 69))
    [message] = sent["messages"]
    assert [(r["address"], r["accepted"]) for r in message["recipients"]] == [
        ("bob@example.test", True), ("nobody@example.test", False)]
    [refused] = valid_output("send", "--server", f"smtp://{mail_servers.host}:{mail_servers.smtp_no_tls}",
                             *login(mail_servers), "--to", "bob@example.test", "-", env=env, input=MESSAGE,
                             expected_codes=(77,))
    assert refused["error"]["code"] == 77   # no STARTTLS: refused before the password is asked for


@pytest.mark.servers
def test_fetch_json_from_imap_and_pop3(mail_servers, env, tmp_path):
    mail_servers.deliver_directly("alice", MESSAGE)
    imap = f"imap://{mail_servers.host}:{mail_servers.imap}"
    [report] = valid_output("fetch", f"{imap}/INBOX", *login(mail_servers), "-o", f"maildir:{tmp_path / 'in'}", env=env)
    assert report["fetched"] and all(isinstance(entry["uid"], int) for entry in report["fetched"])
    [pop] = valid_output("fetch", f"pop3://{mail_servers.host}:{mail_servers.pop3}", *login(mail_servers),
                         "-o", str(tmp_path / "pop"), env=env)
    assert pop["fetched"] and all(isinstance(entry["uidl"], str) for entry in pop["fetched"])


@pytest.mark.servers
def test_folders_and_accounts_check_json_against_dovecot_and_postfix(mail_servers, env):
    imap = f"imap://{mail_servers.host}:{mail_servers.imap}"
    [folders] = valid_output("folders", imap, *login(mail_servers), env=env)
    assert "INBOX" in [folder["name"] for folder in folders["folders"]]
    [denied] = valid_output("folders", imap, "--user", "alice", "--password-command", "echo wrong",
                            "--cafile", str(mail_servers.ca_file), env=env, expected_codes=(77,))
    assert denied["error"]["kind"] == "auth"
    write_config(env, "[accounts.work]\n" + "\n".join(f"{key} = {json.dumps(value)}" for key, value in {
        "smtp": f"smtp://{mail_servers.host}:{mail_servers.submission}", "imap": imap,
        "pop3": f"pop3://127.0.0.1:{int(closed_server().rpartition(':')[2])}", "user": "alice",
        "password": mail_servers.users["alice"], "cafile": str(mail_servers.ca_file)}.items()) + "\n")
    [check] = valid_output("accounts", "check", "work", env=env, expected_codes=(69,))
    assert [server["ok"] for server in check["servers"]] == [True, True, False]


@pytest.mark.servers
def test_queue_run_json_delivering_through_postfix(mail_servers, env, tmp_path):
    queue = tmp_path / "queue"
    server = f"smtp://{mail_servers.host}:{mail_servers.smtp_plain}"
    [queued] = valid_output("send", f"--queue={queue}", "--server", server, "--cafile", str(mail_servers.ca_file),
                            "--to", "bob@example.test", "-", env=env, input=MESSAGE)
    assert queued["delivered"] == 1 and queued["entries"][0]["status"] == "done"
    assert queued["entries"][0]["recipients"][0]["server_queue_id"]
