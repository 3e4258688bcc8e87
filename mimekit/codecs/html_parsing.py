"""The standard library's html.parser, made safe to run on hostile mail.

html.parser is tolerant, but a sender can still make it fail or crawl (CPython 3.11):

- a decimal character reference of more than 4300 digits ("&#" and 5000 digits) makes
  html.unescape's int() raise ValueError;
- a marked section it does not know ("<![foo[", "<![ ") raises AssertionError;
- close() reads markup the input ends inside as text up to the next "<" and parses again
  from there: for each "<" a scan to the end, 25 s of CPU for 64 KiB of '<a x="' repeated
  (CPython gh-135462);
- feed() parses an unfinished tag, comment or <script> again from its start on every
  call, so a long one fed in small pieces is read over and over.

SafeHTMLParser reads each of these as a browser does instead, in linear time. Both the
text view of HTML (html_text) and the web's sanitiser (web.html_body) are built on it.
"""

import re
from html.parser import HTMLParser

# A reference of more than seven significant digits is past U+10FFFF and reads as U+FFFD
# however long it is: cut to eight digits (leading zeros dropped), it means the same.
_LONG_DECIMAL_REFERENCE = re.compile(r"&#([0-9]{9,})")
# The end of a piece of HTML where a decimal reference may go on in the next piece.
_OPEN_REFERENCE = re.compile(r"&(?:#[0-9]*)?\Z")


class SafeHTMLParser(HTMLParser):
    """HTMLParser (with convert_charrefs) that never raises on its input and reads it in
    linear time, fed in one piece or in many. Subclasses handle its events as usual."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self._held = ""                     # a decimal reference the next piece may go on with
        self._waiting: list[str] = []       # pieces not yet handed to the parser
        self._waiting_length = 0

    def feed(self, data: str) -> None:
        data = _shortened_references(self._held + data)
        open_reference = _OPEN_REFERENCE.search(data)
        cut = open_reference.start() if open_reference else len(data)
        self._held = data[cut:]             # at most "&#" and eight digits
        self._waiting.append(data[:cut])
        self._waiting_length += cut
        # What the parser keeps unparsed (an unfinished tag, comment or <script>) is parsed
        # again from its start on each feed: hand it more only once as much again has
        # come, so that each character is read a bounded number of times in all.
        if self._waiting_length >= len(self.rawdata):
            self._hand_over()

    def close(self) -> None:
        self._waiting.append(self._held)
        self._held = ""
        self._hand_over()
        # A tag, comment or declaration the input ends inside is forgotten, as a browser
        # does at the end of its input (what html.parser's close() reads in quadratic time).
        if self.rawdata.startswith("<"):
            self.rawdata = ""
        super().close()

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        """A "<![" section. One html.parser does not know ("<![foo[", "<![ ") it would
        raise AssertionError for is read as a browser reads it: a comment up to the next ">"."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return -1 if end < 0 else end + 1

    def _hand_over(self) -> None:
        data = "".join(self._waiting)
        self._waiting.clear()
        self._waiting_length = 0
        super().feed(data)


def _shortened_references(html: str) -> str:
    return _LONG_DECIMAL_REFERENCE.sub(lambda match: "&#" + (match[1].lstrip("0") or "0")[:8], html)
