"""The charsets a message declares, as the first guess for its text that declares none.

A message is nearly always written by one program in one charset. When one of its text
parts carries no charset parameter, or one its bytes contradict, the labels of the message's
RFC 2047 encoded-words (the Subject, the sender's name), its RFC 2231 parameters and the
charset parameters of its other parts name the likeliest charset, better than statistics on
the part's own bytes: chardet cannot tell windows-1252 from iso-8859-9 in Turkish text, the
Subject's =?iso-8859-9?...?= can (mimekit.codecs.charsets.detect_codec takes them in order).
"""

import codecs
import re

from mimekit.read.tree import Part

# How many distinct labels are worth trying: each costs a trial decoding of the sample.
MAX_HINTS = 8

_ENCODED_WORD_CHARSET = re.compile(rb"=\?([^?*\s]+)(?:\*[^?\s]*)?\?[BbQq]\?")
_RFC2231_CHARSET = re.compile(rb"\*=[ \t]*\"?([A-Za-z0-9_.:+-]+)'")


def charset_hints(part: Part) -> tuple[str, ...]:
    """The charset labels declared around `part`, nearest first: in the header of the part
    and of the entities enclosing it (encoded-words, RFC 2231 parameters), then the charset
    parameters of the message's other parts in document order. Labels that declare ASCII
    say nothing about 8-bit text and are left out."""
    labels: dict[str, None] = {}
    entity = part
    while entity is not None and len(labels) < MAX_HINTS:
        for field in entity.headers:
            for pattern in (_ENCODED_WORD_CHARSET, _RFC2231_CHARSET):
                for match in pattern.finditer(field.raw_value):
                    _add(labels, match[1].decode("ascii", "replace"))
        entity = entity.parent
    for other in part.message.walk():
        if len(labels) >= MAX_HINTS:
            break
        if other is not part and other.params.get("charset"):
            _add(labels, other.params["charset"])
    return tuple(labels)[:MAX_HINTS]


def _add(labels: dict[str, None], label: str) -> None:
    label = label.strip().strip("\"'").lower()
    try:
        if codecs.lookup(label).name == "ascii":
            return
    except (LookupError, ValueError):
        pass
    if label:
        labels.setdefault(label)
