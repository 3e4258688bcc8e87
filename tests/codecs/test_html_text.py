"""Plain text from mail HTML: what a reader sees, laid out in lines."""

import json
import textwrap

import pytest
from helpers import run_bounded
from hypothesis import given
from hypothesis import strategies as st

from mimekit.codecs.html_text import HtmlTextConverter, html_to_text

NEWSLETTER = """<!DOCTYPE html><html><head><title>Issue 7</title>
<style>p { color: red }</style><script>track()</script></head>
<body><h1>Hello&nbsp;there</h1>
<p>First   paragraph with <b>bold</b>
   and a <a href="https://example.com/read">link</a>.</p>
<p>Line one<br>line two<br/><br>after a blank line</p>
<ul><li>apples</li><li>pears<ul><li>conference</li></ul></li></ul>
<ol><li>first</li><li>second</li></ol>
<pre>  indented
    code</pre>
<table><tr><td>Total</td><td>42 &euro;</td></tr></table>
<p><a href="mailto:me@example.com">me@example.com</a> &amp; &lt;friends&gt;
<img src="cid:logo" alt="Company logo"><img src="pixel.gif" alt="">
<a href="#top">back to top</a> <a href="javascript:void(0)">menu</a></p>
</body></html>"""

EXPECTED = """Hello there

First paragraph with bold and a link <https://example.com/read>.

Line one
line two

after a blank line

- apples
- pears
- conference

1. first
2. second

  indented
    code

Total 42 €

me@example.com & <friends> [Company logo] back to top menu
"""


def test_newsletter_reads_as_plain_text():
    assert html_to_text(NEWSLETTER) == EXPECTED


def test_missing_end_of_head_does_not_hide_the_body():
    assert html_to_text("<head><title>t</title><body>visible") == "visible\n"


def test_broken_html_never_fails():
    assert html_to_text("<p>unclosed <b>bold <a href='x'>link") == "unclosed bold link\n"
    assert html_to_text("</div></p><<>>&bogus;") == "<<>>&bogus;\n"
    assert html_to_text("") == ""


def test_link_whose_text_is_its_target_is_not_repeated():
    assert html_to_text('<a href="https://x.org">https://x.org</a>') == "https://x.org\n"


@given(st.data())
def test_feeding_in_pieces_gives_the_same_text(data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(NEWSLETTER)), max_size=20)))
    converter = HtmlTextConverter()
    text, start = "", 0
    for cut in cuts + [len(NEWSLETTER)]:
        text += converter.feed(NEWSLETTER[start:cut])
        start = cut
    assert text + converter.close() == EXPECTED


# -- markup the standard parser chokes on (html_parsing.SafeHTMLParser) --------------------

@pytest.mark.parametrize("html, expected", [
    ("<![foo[x]]>after", "after\n"), ("a<![ b>after", "aafter\n"),         # html.parser: AssertionError
    ("&#" + "1" * 5000 + ";after", "\ufffdafter\n"),                         # int(): more than 4300 digits
    ('<img alt="&#' + "9" * 5000 + ';">after', "[\ufffd]after\n"),
    ("<p>before</p><a x=\"", "before\n"), ("<p>before</p><!-- never ended", "before\n"),
])
def test_markup_the_standard_parser_chokes_on_still_reads_as_text(html, expected):
    assert html_to_text(html) == expected


CPU_SECONDS = 10   # linear: well under a second; quadratic (gh-135462): minutes

# Run in a child under a CPU-time limit: the kernel ends a quadratic parse (SIGXCPU)
# instead of the test timing itself on a shared machine.
CONVERT_UNDER_CPU_LIMIT = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_CPU, ({seconds}, {seconds}))
    from mimekit.codecs.html_text import HtmlTextConverter
    html, piece = json.loads(sys.stdin.read())
    converter = HtmlTextConverter()
    text = "".join(converter.feed(html[i:i + piece]) for i in range(0, len(html), piece)) + converter.close()
    print(json.dumps(text))
""")


@pytest.mark.parametrize("piece", [1 << 20, 64], ids=["whole", "in 64-character pieces"])
@pytest.mark.parametrize("tail", ['<a x="', "<div ", "</", "<!--", "<![foo["],
                         ids=["open attribute", "tag with a space", "end tag", "comment", "marked section"])
def test_a_hostile_document_is_read_in_linear_time(tail, piece):
    """256 KiB of unfinished markup: CPython's parser takes minutes on it, read whole
    (close() parses what follows each "<" again) or fed in pieces (each feed parses the
    unfinished tag again from its start)."""
    html = "<p>before</p>" + tail * (256 * 1024 // len(tail))
    result = run_bounded(["-c", CONVERT_UNDER_CPU_LIMIT.format(seconds=CPU_SECONDS)],
                         input=json.dumps([html, piece]).encode())
    assert result.returncode == 0, result.stderr.decode()[-500:]
    assert json.loads(result.stdout).startswith("before\n")
