"""Address lists: lenient reading (RFC 5322 §3.4, obsolete forms, RFC 2047 names, RFC 6532),
writing checked against Python's `email` as an oracle, and stalwart's header vectors."""

import re
from email import header as email_header
from email import policy, utils
from email.parser import BytesParser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from corpus import stalwart_vectors
from helpers import fastest_of_three, first_field
from mimekit.headers.addresses import (MAX_SMTP_PATH, Address, Group, addr_specs, envelope_entries, format_address,
                               format_address_header, parse_address_list)
from mimekit.defects import DefectKind
from mimekit.errors import DataError
from mimekit.headers.folding import unfold
from strategies import display_names, header_junk

ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
ADJACENT_ENCODED_WORDS = re.compile(rf"{ENCODED_WORD.pattern}\s+{ENCODED_WORD.pattern}")


def kinds(defects):
    return [defect.kind for defect in defects]


def as_typed(name: str, addr: str = "a.b+c@example.com") -> str:
    """How a user writes a name that needs quoting on a command line."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{addr}>'


def header_value(block: bytes) -> str:
    return unfold(block).split(b":", 1)[1].strip().decode()


# --- reading ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    # RFC 5322 Appendix A
    ('"Joe Q. Public" <john.q.public@example.com>', [Address("Joe Q. Public", "john.q.public@example.com")]),
    ("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
     [Address("Mary Smith", "mary@x.test"), Address("", "jdoe@example.org"), Address("Who?", "one@y.test")]),
    ('<boss@nil.test>, "Giant; \\"Big\\" Box" <sysservices@example.net>',
     [Address("", "boss@nil.test"), Address('Giant; "Big" Box', "sysservices@example.net")]),
    ("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
     [Group("A Group", [Address("Ed Jones", "c@a.test"), Address("", "joe@where.test"),
                        Address("John", "jdoe@one.test")])]),
    ("Undisclosed recipients:;", [Group("Undisclosed recipients", [])]),
    ("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", [Address("Pete", "pete@silly.test")]),
    ("A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
     "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
     [Group("A Group", [Address("Chris Jones", "c@public.example"), Address("", "joe@example.org"),
                        Address("John", "jdoe@one.test")])]),
    ("(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;", [Group("Hidden recipients", [])]),
    ("Joe Q. Public <john.q.public@example.com>", [Address("Joe Q. Public", "john.q.public@example.com")]),
    ("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example",
     [Address("Mary Smith", "mary@example.net"), Address("", "jdoe@test.example")]),
    ("John Doe <jdoe@machine(comment).  example>", [Address("John Doe", "jdoe@machine.example")]),
    ("Mary Smith\r\n    \r\n\t<mary@example.net>", [Address("Mary Smith", "mary@example.net")]),
    # RFC 2047 §8
    ("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>", [Address("Keith Moore", "moore@cs.utk.edu")]),
    ("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>", [Address("André Pirard", "PIRARD@vm1.ulg.ac.be")]),
    ("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?= <test@test.com>", [Address("ab", "test@test.com")]),
    ("<nsb@thumper.bellcore.com> (=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=)",
     [Address("םולש ןב ילטפנ", "nsb@thumper.bellcore.com")]),
    # old style: the comment is the name
    ("jdoe@example.org (John Doe)", [Address("John Doe", "jdoe@example.org")]),
    # RFC 6532: raw UTF-8 names and addresses
    ("Jörg Müller <jörg@müller.example>", [Address("Jörg Müller", "jörg@müller.example")]),
    ('"quoted local"@example.com', [Address("", '"quoted local"@example.com')]),
    ("user@[192.0.2.1]", [Address("", "user@[192.0.2.1]")]),
])
def test_well_formed_and_obsolete_address_lists(raw, expected):
    assert parse_address_list(raw) == (expected, [])


def test_raw_utf8_bytes_are_read_as_rfc_6532():
    assert parse_address_list("Jörg <j@example.com>".encode()) == ([Address("Jörg", "j@example.com")], [])


def test_raw_latin1_bytes_are_read_leniently_and_reported():
    addresses, defects = parse_address_list(b"J\xf6rg M\xfcller <j@example.com>")
    assert addresses == [Address("Jörg Müller", "j@example.com")]
    assert kinds(defects) == [DefectKind.CHARSET_FALLBACK]


def test_encoded_words_inside_quotes_are_decoded_and_reported():
    addresses, defects = parse_address_list('"=?utf-8?q?J=C3=B6rg?=" <j@example.com>')
    assert addresses == [Address("Jörg", "j@example.com")]
    assert kinds(defects) == [DefectKind.ENCODED_WORD_MALFORMED]


@pytest.mark.parametrize("raw, expected", [
    ("John Doe jdoe@example.com", Address("John Doe", "jdoe@example.com")),      # no angle brackets
    ("<a@b.com> =?utf-8?q?Doe?=", Address("Doe", "a@b.com")),                   # name after the address
    ("Jane <jane@example.com", Address("Jane", "jane@example.com")),            # no closing bracket
    ("postmaster", Address("", "postmaster")),                                  # no domain
    ("phil@example.com <phil@example.com>", Address("phil@example.com", "phil@example.com")),
])
def test_damage_is_repaired_and_reported(raw, expected):
    addresses, defects = parse_address_list(raw)
    assert addresses == [expected]
    assert DefectKind.ADDRESS_MALFORMED in kinds(defects)


def test_unclosed_group_is_closed_and_reported():
    addresses, defects = parse_address_list("Team: a@example.com, b@example.com")
    assert addresses == [Group("Team", [Address("", "a@example.com"), Address("", "b@example.com")])]
    assert kinds(defects) == [DefectKind.ADDRESS_MALFORMED]


def test_defect_offsets_are_bytes_from_the_value_start():
    _, defects = parse_address_list("Jörg <j@example.com".encode())
    assert defects[0].offset == len("Jörg ".encode())


@given(header_junk)
def test_any_value_is_parsed_without_raising_and_defects_point_inside_it(raw):
    entries, defects = parse_address_list(raw)
    assert all(isinstance(entry, (Address, Group)) for entry in entries)
    assert all(0 <= defect.offset <= len(raw) for defect in defects)


FROM_PIECES = st.one_of(
    st.sampled_from(["Alice", "Martin", "O'Neil", "a=b", "x?=", "=?utf-8?q?=C3=89milie_R?=", "=?UTF-8?B?w6k=?=",
                     "=?utf-8?q?a b?=", "=?x-made-up?q?a?=", "=?utf-8?q?=ZZ?=", "a=?utf-8?q?b?=", "=?utf-8?b?YQ?=",
                     "a@example.com", "a.b+c@x.example", "<", ">", "@", ".", ",", ":", ";", '"Q, R"', "(c)", "[1.2]",
                     "\\"]),
    st.sampled_from(["", " ", "  ", "\t", "\r\n ", "\n ", "\n\t"]))


NAME_WORDS = st.sampled_from(["Alice", "O'Neil", "a=b", "x?=", "=?utf-8?q?=C3=89milie_R?=", "=?UTF-8?B?w6k=?=",
                              "=?x-made-up?q?a?=", "=?utf-8?q?=ZZ?=", "=?utf-8?b?YQ?=", "=?utf-8?q??=", "a=?utf-8?q?b?=",
                              "Dr.", '"Q"'])
NAME_BLANKS = st.sampled_from([" ", " ", "\r\n ", "\n ", "  ", "\t"])
MAILBOXES = st.tuples(st.lists(st.tuples(NAME_BLANKS, NAME_WORDS), max_size=4),
                      st.sampled_from(["a@example.com", "a.b+c@x.example", "a..b@x", "=?x?q?y?=@x.example"]),
                      st.booleans(), st.sampled_from(["", " ", "\r\n "])).map(
    lambda m: "".join(blank + word for blank, word in m[0]).lstrip(" ") + m[3] + (f"<{m[1]}>" if m[2] else m[1]) + m[3])


@settings(max_examples=600)
@given(st.one_of(st.lists(FROM_PIECES, max_size=12).map("".join), MAILBOXES))
@example(" =?utf-8?q?=C3=89milie_Rousseau?= <milie53@example.org>")
@example("Alice\r\n Martin <a.b@example.com>")
@example("a=?utf-8?q?b?= <a@example.com>")
def test_one_plain_mailbox_is_read_fast_as_the_tokenizer_reads_it(value):
    """ASCII bytes of `addr` or `Name <addr>` skip the tokenizer; text always takes it (and
    defect offsets of ASCII text are its bytes' offsets)."""
    assert parse_address_list(value.encode()) == parse_address_list(value)


def test_addr_specs_flattens_groups_for_the_envelope():
    addresses, _ = parse_address_list("a@x.test, Team: b@x.test, C <c@x.test>;, Empty:;, d@x.test")
    assert addr_specs(addresses) == ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]


# --- writing ----------------------------------------------------------------------------

@pytest.mark.parametrize("address, text", [
    (Address("", "a@example.com"), "a@example.com"),
    (Address("John Doe", "jd@example.com"), "John Doe <jd@example.com>"),
    (Address("Doe, John", "jd@example.com"), '"Doe, John" <jd@example.com>'),
    (Address("Jörg", "j@example.com"), "=?utf-8?b?SsO2cmc=?= <j@example.com>"),
    (Address("Jörg", "jörg@müller.example"), "=?utf-8?b?SsO2cmc=?= <jörg@müller.example>"),
])
def test_names_are_encoded_and_addresses_never(address, text):
    assert format_address(address) == text


def test_header_from_typed_addresses_folds_between_addresses():
    block = format_address_header("To", ["Jörg Müller <jm@example.com>", "a@example.com",
                                         '"Doe, John" <john.doe@example.com>', "Team: x@example.com, y@example.com;"])
    assert block == (b"To: =?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <jm@example.com>, a@example.com,\r\n"
                     b' "Doe, John" <john.doe@example.com>, Team: x@example.com, y@example.com;\r\n')


def test_one_typed_string_may_hold_several_addresses():
    block = format_address_header("Cc", ["a@example.com, b@example.com"])
    assert block == b"Cc: a@example.com, b@example.com\r\n"


@pytest.mark.parametrize("typed", ["a@example.com\r\nBcc: victim@example.com", "x@example.com\n"])
def test_cr_or_lf_is_refused(typed):
    with pytest.raises(DataError, match="CR or LF"):
        format_address_header("To", [typed])


@pytest.mark.parametrize("typed", ["a\x00@example.com", '"Nul\x00" <a@example.com>'])
def test_nul_is_refused(typed):
    with pytest.raises(DataError, match="NUL"):
        format_address_header("To", [typed])


@pytest.mark.parametrize("typed", ['"a\x1b[2J"@example.com', "a\x7f@example.com", "a\u202e@example.com"])
def test_an_address_is_never_encoded_so_an_unprintable_one_is_refused(typed):
    with pytest.raises(DataError, match="unprintable"):
        format_address_header("To", [typed])


@pytest.mark.parametrize("typed", ["John Doe jdoe@example.com", "postmaster", "<a@b.c", "", '"unterminated <a@b.c>'])
def test_addresses_that_need_guessing_are_refused(typed):
    with pytest.raises(DataError, match="header To"):
        format_address_header("To", [typed])


@given(display_names)
@example("0  ¡")
@example("¡  0")
@example("a  b ¡")
@example("¡  a  b")
@example("Jörg  Müller")
def test_any_display_name_reads_back_in_pythons_email(name):
    block = format_address_header("To", [as_typed(name)])
    message = BytesParser(policy=policy.default).parsebytes(block + b"\r\n")
    (address,) = message["To"].addresses
    assert message.defects == [] and message["To"].defects == ()
    assert address.addr_spec == "a.b+c@example.com"
    assert block.isascii() and all(len(line) <= 78 for line in block.split(b"\r\n"))
    assert all(len(word) <= 75 for word in ENCODED_WORD.findall(block.decode()))
    # RFC 2047 decoding of the phrase, by the older email.header API that implements §6.2.
    value = header_value(block)
    ((raw_name, _),) = utils.getaddresses([value])
    assert str(email_header.make_header(email_header.decode_header(raw_name))) == name
    if not ADJACENT_ENCODED_WORDS.search(value):
        # One encoded-word, or encoded-words between atoms: Python reads the name exactly,
        # runs of spaces included (it reads a run inside an encoded-word as one space, so
        # encode_phrase keeps runs at the words' edges).
        assert address.display_name == name
    else:
        # Python 3.11 keeps the whitespace between adjacent encoded-words of a display name
        # (CPython gh-128110, against RFC 2047 §6.2); only that whitespace differs.
        assert address.display_name.replace(" ", "") == name.replace(" ", "")


@given(display_names)
def test_any_display_name_reads_back_in_our_parser(name):
    value = header_value(format_address_header("From", [as_typed(name)]))
    assert parse_address_list(value) == ([Address(name, "a.b+c@example.com")], [])


# --- for the SMTP envelope: nothing guessed -----------------------------------------------

@pytest.mark.parametrize("value, specs", [
    ("bob@example.test", ["bob@example.test"]),
    ("Bob <bob@example.test>", ["bob@example.test"]),
    ("<bob@example.test>", ["bob@example.test"]),
    ('"bob@example.test" <x@y.test>', ["x@y.test"]),     # quoted, the name is only a name
    ("bob@example.test (Bob)", ["bob@example.test"]),
    ('"john.doe"@example.test', ['"john.doe"@example.test']),
    ("a+tag@[192.0.2.1]", ["a+tag@[192.0.2.1]"]),
    ("jörg@müller.example", ["jörg@müller.example"]),       # RFC 6531
    ("a@example.test, Team: b@example.test, c@example.test;, Empty:;",
     ["a@example.test", "b@example.test", "c@example.test"]),
])
def test_envelope_addresses_read_exactly(value, specs):
    assert addr_specs(envelope_entries(value, "--to")) == specs


@pytest.mark.parametrize("value, reason", [
    ("bob@example.test <x@y.test>", "'@' in a display name"),       # the lenient reading sends to x@y.test
    ("a@b>\r\nRCPT TO:<x@y", "missing '>'"),
    ("a@b> SIZE=1 AUTH=<evil>", "'@' in a display name"),
    ("Bob bob@example.test", "display name without '<>'"),
    ("bob@example.test SIZE=1", "text after the address"),
    ("<>", "empty address"),
    ("postmaster", "without '@'"),
    ("J\xf6rg <j@example.test>".encode("latin-1"), "not UTF-8"),
    ('"a b"@example.test', "not allowed in an SMTP command"),
    ('"a>b"@example.test', "not allowed in an SMTP command"),
    ('"a\\ b"@example.test', "not allowed in an SMTP command"),
    ('"a\x1b"@example.test', "not allowed in an SMTP command"),
    ("a\x00@example.test", "not allowed in an SMTP command"),
    ("a\u202e@example.test", "not allowed in an SMTP command"),
    ("a\xa0b@example.test", "not allowed in an SMTP command"),    # a no-break space
    ("a..b@example.test", "RFC 5321"),
    ("a@-example.test", "RFC 5321"),
    ("a@example.test.", "RFC 5321"),
    ("a@[]", "RFC 5321"),
    ("a@b@example.test", "RFC 5321"),
    ("x" * MAX_SMTP_PATH + "@example.test", "over 254 bytes"),
])
def test_envelope_addresses_that_need_guessing_or_cannot_go_in_a_command_are_refused(value, reason):
    with pytest.raises(DataError, match=re.escape(reason)) as refused:
        envelope_entries(value, "--to")
    assert str(refused.value).startswith("--to ")
    assert str(refused.value).isprintable()   # the value is shown escaped


def test_a_long_refused_value_is_shown_shortened():
    with pytest.raises(DataError) as refused:
        envelope_entries("Bob " * 10_000 + "bob@example.test", "header To:")
    assert len(str(refused.value)) < 400


# --- stalwart's vectors -----------------------------------------------------------------

# Where stalwart's conventions and ours differ on purpose:
# - stalwart appends comments to display names ("Pete (A nice ) chap his account his host)",
#   "John (my dear friend)"); we use a comment as the name only when there is no other name
#   (the `addr (Full Name)` style) and drop comments inside addresses;
# - an obsolete route is removed from the address ("@node.test:mary@example.net" is
#   mary@example.net) and so is CFWS inside it ("jdoe@test  . example" is jdoe@test.example),
#   since the result is what an SMTP envelope needs;
# - a list element that is only a comment is no address; stalwart makes a name-only entry;
# - an encoded-word in quotes next to an encoded-word outside them is not joined to it:
#   quoted text is text (RFC 2047 §5 forbids words in quotes; we decode them leniently).
STALWART_ADDRESS_DIFFERENCES = {
    "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\n",
    "Pete(A nice \n \\\n ) chap) <pete(his\n account)@silly\n .test(his host)>\n",
    "A Group(Some people)\n        :Chris Jones <c@(Chris's host.)public.example>,\n            "
    "joe@example.org,\n     John <jdoe@one.test> (my dear friend); (the end of the group)\n",
    "(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;\n",
    "Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example\n",
    "John Doe <jdoe@machine(comment).  example>\n",
    "Nathaniel Borenstein <nsb@thumper.bellcore.com>\n    (=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=)\n",
    '=?ISO-8859-1?Q?a?= "=?ISO-8859-2?Q?_b?=" <test@test.com>\n',
    "Name (comment) =?utf-8?q?Doe?= <a@b.com>\n",
}


def stalwart_shape(entries: list[Address | Group]) -> dict:
    """Our result in stalwart's terms: a "List", or "Group"s when there is any group, with
    addresses outside groups collected in groups without a name."""
    def mailbox(address: Address) -> dict:
        return {"name": address.display_name or None, "address": address.addr_spec or None}
    if not any(isinstance(entry, Group) for entry in entries):
        return {"List": [mailbox(entry) for entry in entries]}
    groups: list[dict] = []
    for entry in entries:
        if isinstance(entry, Group):
            groups.append({"name": entry.name or None, "addresses": [mailbox(m) for m in entry.members]})
        elif groups and groups[-1]["name"] is None:
            groups[-1]["addresses"].append(mailbox(entry))
        else:
            groups.append({"name": None, "addresses": [mailbox(entry)]})
    return {"Group": groups}


@pytest.mark.corpus
def test_stalwart_address_vectors(corpus_dir):
    differ = set()
    vectors = stalwart_vectors(corpus_dir, "address")
    for vector in vectors:
        entries, _ = parse_address_list(first_field(vector["header"]))
        if stalwart_shape(entries) != vector["expected"]:
            differ.add(vector["header"])
    assert differ == STALWART_ADDRESS_DIFFERENCES
    assert len(vectors) - len(differ) == 51


# --- cost -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    ", ".join(f"User {i} <user{i}@example.com>" for i in range(7_000)),
    "(" * 200_000,
    '"' + "\\a" * 100_000,
    "<" * 200_000,
    "a." * 100_000 + "@example.com",
    "=?utf-8?q?a?= " * 15_000 + "<a@example.com>",
    "G: " * 60_000,
    "a " * 50_000 + "@b" + ":" * 50_000,
    "=?utf-8?q?=E9?= <a@b>, " * 8_000,
], ids=["many", "comment", "quoted", "angles", "dots", "words", "groups", "colons", "undecodable"])
def test_a_200_kb_list_parses_in_linear_time(raw):
    assert fastest_of_three(lambda: parse_address_list(raw)) < 2
