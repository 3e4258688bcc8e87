"""A message's HTML body made safe to show in the page's iframe.

The sender wrote the HTML, so it is hostile: it may try to run script, to submit or
navigate somewhere, or to load a remote resource that tells the sender the mail was read
(a tracking pixel). Three layers stand in the way, each enough on its own for script:

1. sanitise rebuilds the document from an allow-list: the stdlib html.parser reads it
   (html_parsing.SafeHTMLParser: hostile markup neither fails nor crawls),
   and only elements and attributes known to be inert are written back, every text and
   attribute value escaped, every URL checked after the decoding a browser does
   (entities, tabs and newlines inside "jav&#x09;ascript:"). What the parser and a
   browser might read differently does not matter: the browser only ever sees what was
   written here. Script-bearing and raw-text elements (script, svg, math, iframe, object,
   noscript, template, ...) are dropped with their content; <style> is kept, its CSS
   cleaned (_Sanitiser._css). `cid:` URLs become the caller's URLs for the
   message's own parts; remote images are dropped, and counted, unless allowed.
2. body_csp: the document's own Content-Security-Policy: no script, nothing remote unless
   allowed, and the `sandbox` directive, so it is sandboxed even when opened on its own.
3. The page's iframe has the `sandbox` attribute (no allow-scripts, no allow-same-origin).
"""

import html
import re
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import unquote

from mimekit.codecs.html_parsing import SafeHTMLParser

# Elements written back (with their allowed attributes); <body> becomes a <div> that keeps
# its colours and layout. Every other element's tag is dropped and its text kept, except
# those below, which are dropped with everything inside them.
_ELEMENTS = frozenset("""
    a abbr address article aside b bdi big blockquote br caption center cite code col colgroup dd del
    details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 header hr i img ins kbd li
    main mark nav ol p pre q s samp section small span strike strong sub summary sup table tbody td tfoot
    th thead tr tt u ul var wbr
""".split())
_DROPPED_WITH_CONTENT = frozenset("""
    script style title iframe frame frameset object applet noscript noembed noframes template
    svg math xmp textarea select audio video canvas
""".split())
_VOID = frozenset("area base br col embed hr img input keygen link meta param source track wbr frame".split())
_ATTRIBUTES = frozenset("""
    align alt bgcolor border cellpadding cellspacing class color cols colspan dir face headers height hspace
    id lang nowrap rowspan rules scope size span start style summary title type valign vspace width
""".split())
_URL_ATTRIBUTES = {"a": ("href",), "img": ("src",)}
_BACKGROUND_ELEMENTS = frozenset("body table thead tbody tfoot tr td th div".split())
_LINK_SCHEMES = frozenset(("http", "https", "mailto"))
_REMOTE_SCHEMES = frozenset(("http", "https"))
_LOADED_SCHEMES = _REMOTE_SCHEMES | {"cid", "data"}
_INLINE_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|webp);base64,[a-z0-9+/=\s]*", re.IGNORECASE)
# Browsers remove tabs and newlines anywhere in a URL, and C0 controls and spaces around it
# (WHATWG URL): "jav\tascript:" is "javascript:".
_URL_IGNORED = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
# What is read of an HTML body (messages.safe_html_body); the rest is cut, and the page says so.
# No mail client shows more HTML than a MiB, and the parse is linear but slow on dense
# hostile markup (a second or more per MiB of "<a>"), so this bounds a view's CPU too.
MAX_HTML_CHARACTERS = 1024 * 1024


class SanitisedHtml(NamedTuple):
    document: str          # the whole, inert HTML document, in UTF-8
    remote_blocked: int    # remote resources (images, CSS backgrounds) dropped: 0 when allowed


def sanitise(text: str, cid_url: Callable[[str], str | None], allow_remote: bool) -> SanitisedHtml:
    """`text` (the HTML body, decoded) made safe, and what was blocked, in one pass.

    cid_url(content_id) gives the URL that serves the message's part with that Content-ID
    (None: drop the reference). Remote images (http, https) are kept only when
    allow_remote; otherwise they are dropped, counted, and the element marked data-remote."""
    sanitiser = _Sanitiser(cid_url, allow_remote)
    return SanitisedHtml(sanitiser.run(text), sanitiser.remote_blocked)


def body_csp(allow_remote: bool) -> str:
    """The Content-Security-Policy of the HTML body's document: no script, no plugin, no
    form, no font or style sheet from anywhere, images from this server (the message's
    cid: parts) and data: URLs, and from anywhere only when the user asked. `sandbox`
    without allow-scripts or allow-same-origin; allow-popups lets a link (all of them
    target a new tab, without opener) open outside the sandbox."""
    images = "'self' data: *" if allow_remote else "'self' data:"
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; font-src 'none'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
            "sandbox allow-popups allow-popups-to-escape-sandbox")


class _Sanitiser(SafeHTMLParser):
    """One run over one document: the allow-listed elements, written back as they come."""

    def __init__(self, cid_url: Callable[[str], str | None], allow_remote: bool):
        super().__init__()
        self.cid_url, self.allow_remote = cid_url, allow_remote
        self.remote_blocked = 0
        self._out: list[str] = []
        self._open: list[str] = []           # elements written and not yet closed
        self._dropping: list[str] = []       # the dropped element we are inside (and those nested in it)
        self._style: list[str] | None = None  # the text of the <style> being read

    def run(self, text: str) -> str:
        self.feed(text[:MAX_HTML_CHARACTERS])
        self.close()
        body = "".join(self._out) + "".join(f"</{tag}>" for tag in reversed(self._open))
        return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
                '<meta name="referrer" content="no-referrer"></head>\n<body>' + body + "</body></html>\n")

    # -- html.parser's events --------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self_closing=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self_closing=True)

    def handle_endtag(self, tag: str) -> None:
        if self._dropping:
            if tag == self._dropping[-1]:
                self._dropping.pop()
            return
        if tag == "style" and self._style is not None:
            self._out.append("<style>" + self._css("".join(self._style)) + "</style>")
            self._style = None
            return
        name = "div" if tag == "body" else tag
        if name in self._open:        # close what is open inside it too, as a browser would
            while self._open:
                closed = self._open.pop()
                self._out.append(f"</{closed}>")
                if closed == name:
                    break

    def handle_data(self, data: str) -> None:
        if self._style is not None:
            self._style.append(data)
        elif not self._dropping:
            self._out.append(html.escape(data, quote=False))

    # comments, declarations, processing instructions and CDATA sections are dropped:
    # HTMLParser's default handlers for them do nothing.

    # -- writing back ----------------------------------------------------------------

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], self_closing: bool) -> None:
        if self._dropping:
            if tag == self._dropping[-1] and not self_closing:
                self._dropping.append(tag)
            return
        if tag == "style" and not self_closing:
            self._style = []          # html.parser reads its content as raw text, as browsers do
            return
        if tag in _DROPPED_WITH_CONTENT:
            if not self_closing and tag not in _VOID:
                self._dropping.append(tag)
            return
        name = "div" if tag == "body" else tag
        if name not in _ELEMENTS:
            return
        written = self._attributes(tag, name, attrs)
        self._out.append(f"<{name}{written}>")
        if name not in _VOID and not self_closing:
            self._open.append(name)
        elif name not in _VOID:       # <div/> is a start tag in HTML: close it at once
            self._out.append(f"</{name}>")

    def _attributes(self, tag: str, name: str, attrs: list[tuple[str, str | None]]) -> str:
        kept: dict[str, str] = {}
        remote = False
        for attribute, value in attrs:
            value = value or ""
            if attribute in _URL_ATTRIBUTES.get(name, ()) or (attribute == "background" and tag in _BACKGROUND_ELEMENTS):
                url, blocked = (self._link(value), False) if attribute == "href" else self._resource(value)
                remote = remote or blocked
                if url is not None:
                    kept[attribute] = url
            elif attribute == "style":
                kept[attribute] = self._css(value)
            elif attribute in _ATTRIBUTES:
                kept.setdefault(attribute, value)
        if name == "a" and "href" in kept:
            kept.update(target="_blank", rel="noopener noreferrer")
        if remote:
            kept["data-remote"] = ""
        return "".join(f' {attribute}="{html.escape(value, quote=True)}"' for attribute, value in kept.items())

    def _link(self, value: str) -> str | None:
        """An href as a browser would follow it, if it goes somewhere harmless."""
        url = _normalised_url(value)
        return url if _scheme(url) in _LINK_SCHEMES else None

    def _resource(self, value: str) -> tuple[str | None, bool]:
        """An image's URL as written back (None: dropped) and whether it was a remote one
        blocked: cid: becomes the caller's URL for that part; an inline PNG, GIF, JPEG or
        WebP data: URL stays; http(s) stays when allowed; anything else (javascript:,
        data:text/html, a relative URL, which would load from this server) is dropped."""
        url = _normalised_url(value)
        scheme = _scheme(url)
        if scheme == "cid":
            return self.cid_url(unquote(url[len("cid:"):])), False
        if scheme == "data":
            return (url if _INLINE_IMAGE.fullmatch(url) else None), False
        if scheme in _REMOTE_SCHEMES:
            if self.allow_remote:
                return url, False
            self.remote_blocked += 1
            return None, True
        return None, False

    def _css(self, css: str) -> str:
        """A style sheet or a style attribute with no way left to run code or load what the
        user has not allowed.

        CSS escapes ("u\\72l(" is "url(") are decoded first and no backslash is written
        back, so what is checked is what a browser reads. Each url() goes through _resource
        (a dropped one becomes `none`) and waits behind a placeholder while the rest is
        cleaned: a quoted string that is a URL (what image-set() takes) goes through
        _resource too, @import goes, and what still looks like code or a URL is broken
        by underscores. No "<" is written back, so a <style> element cannot be ended early."""
        css = _CSS_ESCAPE.sub(_unescaped_css, css)
        css = css.replace("\\", "").replace("<", "").replace("\x00", "")
        css = _CSS_IMPORT.sub("", _CSS_COMMENT.sub(" ", css))
        checked: list[str] = []

        def url(match: re.Match) -> str:
            rewritten, _ = self._resource(next(group for group in match.groups() if group is not None))
            checked.append("none" if rewritten is None else f'url("{_css_string_text(rewritten)}")')
            return f"\x00{len(checked) - 1}\x00"

        def string(match: re.Match) -> str:
            text = next(group for group in match.groups() if group is not None)
            if _scheme(_normalised_url(text)) not in _LOADED_SCHEMES:
                return match.group(0)
            rewritten, _ = self._resource(text)
            return '""' if rewritten is None else f'"{_css_string_text(rewritten)}"'

        css = _CSS_FORBIDDEN.sub(_broken, _CSS_STRING.sub(string, _CSS_URL.sub(url, css)))
        return _CHECKED_URL.sub(lambda match: checked[int(match.group(1))], css)


def _normalised_url(value: str) -> str:
    return _URL_IGNORED.sub("", value).strip("".join(map(chr, range(0x21))))


def _scheme(url: str) -> str | None:
    """The URL's scheme, lowercase; "https" for a protocol-relative "//host/..." (browsers
    read "\\" as "/" there); None for a relative URL."""
    if url.startswith(("//", "\\\\", "/\\", "\\/")):
        return "https"
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


# -- CSS -----------------------------------------------------------------------------

_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|(.))", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_IMPORT = re.compile(r"@import[^;]*;?", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*(?:\"([^\"]*)\"|'([^']*)'|([^)\s\"']*))\s*\)", re.IGNORECASE)
_CSS_STRING = re.compile(r"\"([^\"]*)\"|'([^']*)'")
_CHECKED_URL = re.compile("\x00([0-9]+)\x00")   # where a checked url() waits while the rest is cleaned
# What may still be there: functions and properties that run code or load something in
# some browser, and URLs (a checked url() is out of the way by then).
_CSS_FORBIDDEN = re.compile(r"url\s*\(|expression\s*\(|javascript\s*:|vbscript\s*:|behavior\s*:|-moz-binding\s*:|@import"
                            r"|(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


def _unescaped_css(match: re.Match) -> str:
    if match.group(1) is not None:
        code = int(match.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return match.group(2)


def _css_string_text(text: str) -> str:
    """`text` safe inside a double-quoted CSS string written without escapes: no quote or
    line break can end it (a URL keeps its meaning percent-encoded)."""
    return text.replace('"', "%22").replace("'", "%27").replace("\n", "").replace("\r", "").replace("\f", "")


def _broken(match: re.Match) -> str:
    """A suspicious word made inert: "expression(" becomes "_expression_", "https://" "_https__"."""
    return "_" + match.group(0).replace("(", "_").replace(":", "_").replace("/", "_")
