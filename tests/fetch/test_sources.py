"""Every fetch source keeps the declared Source protocol (issue 9): the fetch loop is
written against it, so a source missing a member, or taking other parameters, breaks
fetch only for that source."""

import inspect

import pytest

from mimekit.fetch.sources import LocalSource, Source
from mimekit.transport.imap.client import IMAPClient
from mimekit.transport.pop3.client import POP3Client
from mimekit.transport.urls import parse_url

SOURCES = {
    "imaps://alice@127.0.0.1": IMAPClient,
    "pop3s://alice@127.0.0.1": POP3Client,
    "maildir:/nowhere": LocalSource,
    "mbox:/nowhere": LocalSource,
}
PROTOCOL_METHODS = ["open", "list", "describe", "retrieve", "delete", "public_id", "close"]


def unopened(url: str):
    kind = SOURCES[url]
    parsed = parse_url(url, {"imaps", "pop3s", "maildir", "mbox"})
    return kind(parsed) if kind is LocalSource else kind(parsed, None, 5.0)


@pytest.mark.parametrize("url", SOURCES)
def test_each_source_has_every_member_of_the_protocol(url):
    source = unopened(url)          # constructing one connects to nothing
    assert isinstance(source, Source)
    assert isinstance(source.id_kind, str) and isinstance(source.account, str)
    assert isinstance(source.stable_ids, bool) and isinstance(source.lists_everything, bool)


@pytest.mark.parametrize("url", SOURCES)
@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_each_method_takes_the_protocols_parameters(url, method):
    declared = inspect.signature(getattr(Source, method))
    implemented = inspect.signature(getattr(SOURCES[url], method))
    wanted = [name for name in declared.parameters if name != "self"]
    assert [name for name in implemented.parameters if name != "self"] == wanted
