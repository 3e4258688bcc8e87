"""Readable plain text from an HTML body, for `decode --text` when there is no text/plain.

Built on the standard library's tolerant html.parser, so broken mail HTML never fails:
script, style and head contents are dropped, block elements become line breaks (a blank
line between paragraphs), white space collapses as a browser would (except in <pre>),
entities are decoded, list items get a marker, and links keep their target as
"text <url>". `HtmlTextConverter` is incremental: feed it HTML as it is decoded. It is
read with html_parsing.SafeHTMLParser, so hostile markup neither fails nor crawls.
"""

from mimekit.codecs.html_parsing import SafeHTMLParser

# Dropped with everything inside: never meant to be read.
_HIDDEN = frozenset({"script", "style", "head", "template", "title"})
# Separated from what surrounds them by a blank line ...
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table",
                         "dl", "hr", "figure", "address", "fieldset"})
# ... or by a line break.
_BLOCKS = frozenset({"div", "li", "tr", "dd", "dt", "section", "article", "aside", "header",
                     "footer", "nav", "main", "center", "form", "caption", "figcaption",
                     "details", "summary", "dialog", "thead", "tbody", "tfoot"})
_LISTS = frozenset({"ul", "ol"})
_CELLS = frozenset({"td", "th"})
# Link targets that add nothing for a reader of plain text.
_UNSHOWN_LINKS = ("#", "javascript:", "data:", "cid:")


def html_to_text(html: str) -> str:
    converter = HtmlTextConverter()
    return converter.feed(html) + converter.close()


class HtmlTextConverter(SafeHTMLParser):
    """Feed HTML text in pieces; each call returns the plain text ready so far."""

    def __init__(self):
        super().__init__()
        self._out: list[str] = []
        self._hidden_by: str | None = None   # the element whose contents are being dropped
        self._pre_depth = 0
        self._lists: list[int | None] = []   # per open list: next number (ol) or None (ul)
        self._links: list[tuple[str, list[str]]] = []   # open <a>: href and its text so far
        self._breaks = 0          # line breaks owed before the next text (at most 2)
        self._space = False       # a space owed before the next text
        self._at_line_start = True
        self._started = False     # nothing before the first text: no leading blank lines

    def feed(self, html: str) -> str:
        super().feed(html)
        return self._take()

    def close(self) -> str:
        super().close()
        if self._started:
            self._out.append("\n")
        return self._take()

    def handle_starttag(self, tag, attrs):
        if self._hidden_by:
            if tag == "body" and self._hidden_by == "head":   # a missing </head>
                self._hidden_by = None
            return
        if tag in _HIDDEN:
            self._hidden_by = tag
        elif tag == "br":
            self._breaks = min(self._breaks + 1, 2)
        elif tag in _LISTS:
            self._block(1 if self._lists else 2)
            self._lists.append(1 if tag == "ol" else None)
        elif tag == "li":
            self._block(1)
            self._write(self._list_marker())
            self._space = False
        elif tag in _PARAGRAPHS:
            self._block(2)
            self._pre_depth += tag == "pre"
        elif tag in _BLOCKS:
            self._block(1)
        elif tag in _CELLS:
            self._space = True
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", []))
        elif tag == "img" and (alt := (dict(attrs).get("alt") or "").strip()):
            self.handle_data(f"[{alt}]")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)   # <br/>, <img/>: no end tag will follow

    def handle_endtag(self, tag):
        if self._hidden_by:
            if tag == self._hidden_by:
                self._hidden_by = None
            return
        if tag in _LISTS and self._lists:
            self._lists.pop()
            self._block(1 if self._lists else 2)
        elif tag in _PARAGRAPHS:
            self._block(2)
            self._pre_depth = max(self._pre_depth - (tag == "pre"), 0)
        elif tag in _BLOCKS or tag == "li":
            self._block(1)
        elif tag == "a" and self._links:
            href, text = self._links.pop()
            if _shows_target(href, "".join(text).strip()):
                self._space = True
                self._write(f"<{href.strip()}>")

    def handle_data(self, data):
        if self._hidden_by:
            return
        if self._pre_depth:
            self._write(data)
            return
        words = data.split()
        if not words:
            self._space = self._space or bool(data)
            return
        self._space = self._space or data[0].isspace()
        for word in words:
            self._write(word)
            self._space = True
        self._space = data[-1].isspace()

    def _block(self, breaks: int) -> None:
        self._breaks = max(self._breaks, breaks)

    def _list_marker(self) -> str:
        if not self._lists or self._lists[-1] is None:
            return "- "
        number = self._lists[-1]
        self._lists[-1] = number + 1
        return f"{number}. "

    def _write(self, text: str) -> None:
        if self._breaks and self._started:
            self._out.append("\n" * self._breaks)
            self._at_line_start = True
        elif self._space and not self._at_line_start:
            self._out.append(" ")
        self._breaks, self._space = 0, False
        self._out.append(text)
        self._started = True
        self._at_line_start = text.endswith("\n")
        for _, link_text in self._links:
            link_text.append(text)

    def _take(self) -> str:
        text = "".join(self._out)
        self._out.clear()
        return text


def _shows_target(href: str, text: str) -> bool:
    """Show a link's target unless it is empty, internal, or already its own text."""
    href = href.strip()
    if not href or href.lower().startswith(_UNSHOWN_LINKS):
        return False
    return text not in (href, href.removeprefix("mailto:"))
