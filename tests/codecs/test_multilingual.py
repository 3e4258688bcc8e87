"""Multilingual mail as it arrives: declared, undeclared and mislabelled charsets, read right.

Each message is one way real mail gets its charset wrong (or right: the control cases), in the
language and with the mail programs where it happens: 7-bit ISO-2022-JP/-KR/-CN sent without
a label or as us-ascii, vendor characters in ISO-2022-JP, UTF-8 under a single-byte label,
8-bit text whose charset only the Subject or a sibling part names. Each runs through
`mimekit decode --text` (the body) and `mimekit show --json` (the Subject), which must give
exactly the text its writer meant.
"""

import json
import subprocess
import sys
from base64 import b64encode
from binascii import b2a_qp

import pytest

# -- writing the messages ------------------------------------------------------------------

ESC = b"\x1b"


def b_word(text: str, codec: str, label: str | None = None) -> bytes:
    """An RFC 2047 B encoded-word carrying `text` in `codec`, labelled `label`."""
    return b"=?%s?B?%s?=" % ((label or codec).encode(), b64encode(iso_2022_jp(text) if codec == "cp50220"
                                                                      else text.encode(codec)))


def q_word(text: str, codec: str, label: str | None = None) -> bytes:
    return b"=?%s?Q?%s?=" % ((label or codec).encode(),
                            b2a_qp(text.encode(codec), header=True).replace(b"=\n", b""))


def iso_2022_jp(text: str) -> bytes:
    """`text` as CP50220 writes it: JIS X 0208 rows (NEC row 13 and NEC-selected IBM kanji
    included) through ESC $ B, half-width katakana through ESC ( I, back to ASCII by ESC ( B
    before each line end and at the end."""
    out, mode = bytearray(), b"ascii"

    def switch(to: bytes, escape: bytes) -> None:
        nonlocal mode
        if mode != to:
            out.extend(escape)
            mode = to

    for char in text:
        if char.isascii():
            switch(b"ascii", ESC + b"(B")
            out.extend(char.encode())
        elif "\uff61" <= char <= "\uff9f":
            switch(b"kana", ESC + b"(I")
            out.append(ord(char) - 0xFF61 + 0x21)
        else:
            switch(b"jis", ESC + b"$B")
            out.extend(_shift_jis_to_jis(char.encode("cp932")))
    switch(b"ascii", ESC + b"(B")
    return bytes(out)


def _shift_jis_to_jis(pair: bytes) -> bytes:
    first, second = pair
    assert first < 0xF0, "no JIS row for cp932's IBM area"
    row = (first - (0x70 if first < 0xA0 else 0xB0)) * 2 - (second < 0x9F)
    cell = second - (0x7E if second >= 0x9F else 0x1F + (second >= 0x80))
    return bytes((row, cell))


def iso_2022_lines(text: str, encode) -> bytes:
    """Each line encoded on its own, as mailers do (every line ends in ASCII)."""
    return b"\r\n".join(encode(line) for line in text.split("\n"))


def iso_2022_cn(line: str) -> bytes:
    """RFC 1922: GB 2312 designated to G1 on each line that uses it, shifted in with SO."""
    if line.isascii():
        return line.encode()
    out, shifted = bytearray(ESC + b"$)A"), False
    for char in line:
        hanzi = not char.isascii()
        if hanzi != shifted:
            out.append(0x0E if hanzi else 0x0F)
            shifted = hanzi
        out.extend(bytes(byte & 0x7F for byte in char.encode("gb2312")) if hanzi else char.encode())
    if shifted:
        out.append(0x0F)
    return bytes(out)


def mail(subject: bytes, body: bytes, content_type: bytes | None = b"text/plain", cte: bytes | None = None) -> bytes:
    header = [b"From: sender@example.org", b"To: reader@example.net", b"Subject: " + subject,
              b"Date: Tue, 3 Dec 2024 10:00:00 +0000", b"MIME-Version: 1.0"]
    if content_type is not None:
        header.append(b"Content-Type: " + content_type)
    if cte is not None:
        header.append(b"Content-Transfer-Encoding: " + cte)
    return b"\r\n".join(header) + b"\r\n\r\n" + body


def alternative(subject: bytes, plain: bytes, plain_type: bytes, html: bytes, html_type: bytes) -> bytes:
    body = (b"--b1\r\nContent-Type: " + plain_type + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + plain +
            b"\r\n--b1\r\nContent-Type: " + html_type + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + html +
            b"\r\n--b1--\r\n")
    return mail(subject, body, b'multipart/alternative; boundary="b1"')


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# -- the texts ------------------------------------------------------------------------------

JA = "お世話になっております。\n会議の資料を添付いたします。\nご確認のほど、よろしくお願いいたします。\n"
JA_SUBJECT = "会議資料の送付"
JA_VENDOR = "株式会社①②③の髙橋です。\n㈱㍻ 纊褜 の件、承知しました。\n"
JA_KANA = "ｶﾀｶﾅ ﾃｽﾄ です。\n"
KO = "안녕하세요. 다음 주 회의 일정을 알려드립니다.\n참석 여부를 회신해 주세요.\n"
KO_SUBJECT = "회의 일정 안내"
ZH = "您好，附件是本月的销售报告。\n请查收并回复。\n"
ZH_SUBJECT = "本月销售报告"
ZH_TW = "您好，附件是本月的銷售報告。\n請查收。\n"
RU = "Добрый день! Высылаю вам отчёт за прошлый месяц.\nС уважением, Иван Петров.\n"
RU_SUBJECT = "Отчёт за месяц"
TR = "Merhaba, yarınki toplantı saat üçte başlayacak.\nLütfen dosyaları gözden geçirin. Teşekkürler, Ayşe Yılmaz.\n"
TR_SUBJECT = "Toplantı gündemi ve çalışma planı"
EL = "Καλημέρα σας, σας στέλνω την προσφορά μας.\nΜε εκτίμηση, Γιώργος Παπαδόπουλος.\n"
EL_SUBJECT = "Προσφορά για το έργο"
HE = "שלום, מצורף הדוח החודשי.\nבברכה, דני כהן.\n"
HE_SUBJECT = "דוח חודשי"
AR = "مرحبا، نرسل لكم جدول الاجتماع القادم.\nمع التحية، أحمد.\n"
AR_SUBJECT = "جدول الاجتماع"
TH = "สวัสดีครับ ขอส่งรายงานประจำเดือนมาให้พิจารณา\nขอบคุณครับ\n"
TH_SUBJECT = "รายงานประจำเดือน"
VI = "Xin chào các bạn, cuộc họp sẽ bắt đầu lúc chín giờ.\nTrân trọng, Nguyễn Văn An.\n"
VI_SUBJECT = "Thông báo cuộc họp"
PL = "Dzień dobry, przesyłam zaświadczenie o zatrudnieniu.\nŻyczę miłego dnia, Paweł Wójcik.\n"
PL_SUBJECT = "Zaświadczenie źródłowe"
CS = "Dobrý den, posílám vám smlouvu k podpisu.\nS pozdravem, Jiří Dvořák.\n"
CS_SUBJECT = "Smlouva k podpisu – žádost"
DE = "Sehr geehrte Damen und Herren,\nanbei die Unterlagen für die Prüfung. Mit freundlichen Grüßen, Jürgen Müller\n"
DE_SUBJECT = "Unterlagen für die Prüfung"
FR = "Bonjour, voici le compte rendu de la réunion.\nÀ bientôt, cœur léger, « Hélène » — François\n"
FR_SUBJECT = "Compte rendu de la réunion"
ES = "Hola, te envío la información del año pasado.\n¿Podrías revisarla? Gracias, Begoña Núñez.\n"
ES_SUBJECT = "Información del año pasado"
# Vietnamese as windows-1258 writes it: base letters and combining tone marks.
VI_1258 = "Cảm ơn bạn rất nhiều vì đã giúp đỡ.\nTrân trọng, Lê Thị Hồng.\n"


def cp1258(text: str) -> bytes:
    import unicodedata
    out = bytearray()
    for char in text:
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", char)
            try:
                out += decomposed.encode("cp1258")
            except UnicodeEncodeError:   # keep the letter with its first mark precomposed
                out += unicodedata.normalize("NFC", decomposed[:2]).encode("cp1258") + decomposed[2:].encode("cp1258")
    return bytes(out)


def jp_lines(text: str) -> bytes:
    return iso_2022_lines(text, iso_2022_jp)


# (id, raw message, the Subject, the body text)
CASES = [
    # Japanese: ISO-2022-JP with and without a label, vendor characters, Shift_JIS, EUC-JP.
    ("ja-iso2022jp-labelled", mail(b_word(JA_SUBJECT, "cp50220", "ISO-2022-JP"), jp_lines(JA),
                                   b"text/plain; charset=ISO-2022-JP", b"7bit"), JA_SUBJECT, JA),
    ("ja-iso2022jp-no-content-type", mail(iso_2022_jp(JA_SUBJECT), jp_lines(JA), None), JA_SUBJECT, JA),
    ("ja-iso2022jp-no-charset", mail(b_word(JA_SUBJECT, "cp50220", "iso-2022-jp"), jp_lines(JA)), JA_SUBJECT, JA),
    ("ja-iso2022jp-as-us-ascii", mail(b_word(JA_SUBJECT, "cp50220", "ISO-2022-JP"), jp_lines(JA),
                                      b"text/plain; charset=us-ascii"), JA_SUBJECT, JA),
    ("ja-iso2022jp-raw-subject-as-us-ascii", mail(iso_2022_jp(JA_SUBJECT), jp_lines(JA),
                                                  b'text/plain; charset="US-ASCII"', b"7bit"), JA_SUBJECT, JA),
    ("ja-iso2022jp-nec-ibm", mail(b_word("①の件", "cp50220", "ISO-2022-JP"), jp_lines(JA_VENDOR),
                                  b"text/plain; charset=iso-2022-jp"), "①の件", JA_VENDOR),
    ("ja-iso2022jp-nec-undeclared", mail(iso_2022_jp("㈱髙橋"), jp_lines(JA_VENDOR), None), "㈱髙橋", JA_VENDOR),
    ("ja-iso2022jp-halfwidth-kana", mail(b_word("ｶﾀｶﾅ", "cp50220", "ISO-2022-JP"), jp_lines(JA_KANA),
                                         b"text/plain; charset=ISO-2022-JP"), "ｶﾀｶﾅ", JA_KANA),
    ("ja-shift_jis-labelled", mail(b_word(JA_SUBJECT, "cp932", "Shift_JIS"), crlf(JA).encode("cp932"),
                                   b"text/plain; charset=Shift_JIS", b"8bit"), JA_SUBJECT, JA),
    ("ja-shift_jis-undeclared-subject-says", mail(b_word(JA_SUBJECT, "cp932", "shift_jis"),
                                                  crlf(JA).encode("cp932"), None, b"8bit"), JA_SUBJECT, JA),
    ("ja-euc-jp-labelled", mail(b_word(JA_SUBJECT, "euc_jp", "EUC-JP"), crlf(JA).encode("euc_jp"),
                                b"text/plain; charset=EUC-JP", b"8bit"), JA_SUBJECT, JA),
    # Korean.
    ("ko-iso2022kr-labelled", mail(b_word(KO_SUBJECT, "cp949", "ks_c_5601-1987"), crlf(KO).encode("iso2022_kr"),
                                   b"text/plain; charset=ISO-2022-KR"), KO_SUBJECT, KO),
    ("ko-iso2022kr-undeclared", mail(KO_SUBJECT.encode("iso2022_kr"), crlf(KO).encode("iso2022_kr"), None),
     KO_SUBJECT, KO),
    ("ko-euc-kr-labelled", mail(b_word(KO_SUBJECT, "cp949", "EUC-KR"), crlf(KO).encode("cp949"),
                                b"text/plain; charset=EUC-KR", b"8bit"), KO_SUBJECT, KO),
    ("ko-cp949-undeclared-subject-says", mail(b_word(KO_SUBJECT, "cp949", "ks_c_5601-1987"),
                                              crlf(KO).encode("cp949"), b"text/plain", b"8bit"), KO_SUBJECT, KO),
    # Chinese.
    ("zh-gb2312-labelled", mail(b_word(ZH_SUBJECT, "gb2312"), crlf(ZH).encode("gb2312"),
                                b"text/plain; charset=gb2312", b"8bit"), ZH_SUBJECT, ZH),
    ("zh-iso2022cn-undeclared", mail(b_word(ZH_SUBJECT, "gb2312"), iso_2022_lines(ZH, iso_2022_cn), None),
     ZH_SUBJECT, ZH),
    ("zh-iso2022cn-labelled", mail(iso_2022_cn(ZH_SUBJECT), iso_2022_lines(ZH, iso_2022_cn),
                                   b"text/plain; charset=ISO-2022-CN"), ZH_SUBJECT, ZH),
    ("zh-big5-labelled", mail(b_word("報告", "big5"), crlf(ZH_TW).encode("big5"), b"text/plain; charset=big5",
                              b"8bit"), "報告", ZH_TW),
    ("zh-gbk-undeclared-subject-says", mail(b_word(ZH_SUBJECT, "gbk", "GBK"), crlf(ZH).encode("gbk"), None,
                                            b"8bit"), ZH_SUBJECT, ZH),
    # Russian: koi8-r, windows-1251, and UTF-8 under either label.
    ("ru-koi8-r-labelled", mail(b_word(RU_SUBJECT, "koi8-r"), crlf(RU).encode("koi8-r"),
                                b"text/plain; charset=koi8-r", b"8bit"), RU_SUBJECT, RU),
    ("ru-windows-1251-labelled", mail(b_word(RU_SUBJECT, "windows-1251"), crlf(RU).encode("cp1251"),
                                      b"text/plain; charset=windows-1251", b"8bit"), RU_SUBJECT, RU),
    ("ru-utf8-labelled-windows-1251", mail(b_word(RU_SUBJECT, "utf-8", "windows-1251"), crlf(RU).encode(),
                                           b"text/plain; charset=windows-1251", b"8bit"), RU_SUBJECT, RU),
    ("ru-utf8-labelled-koi8-r-base64", mail(b_word(RU_SUBJECT, "utf-8", "koi8-r"), b64encode(crlf(RU).encode()),
                                            b"text/plain; charset=KOI8-R", b"base64"), RU_SUBJECT, RU),
    ("ru-koi8-r-undeclared-subject-says", mail(b_word(RU_SUBJECT, "koi8-r", "KOI8-R"), crlf(RU).encode("koi8-r"),
                                               None, b"8bit"), RU_SUBJECT, RU),
    ("ru-windows-1251-undeclared", mail(b"Report", crlf(RU).encode("cp1251"), b"text/plain", b"8bit"),
     "Report", RU),
    # Turkish.
    ("tr-iso-8859-9-undeclared-subject-says", mail(q_word(TR_SUBJECT, "iso8859_9", "ISO-8859-9"),
                                                   crlf(TR).encode("iso8859_9"), None, b"8bit"), TR_SUBJECT, TR),
    ("tr-short-undeclared-subject-says", mail(q_word("Toplantı", "iso8859_9", "iso-8859-9"),
                                              "Toplantı yarın saat beşte.\r\n".encode("iso8859_9"), None, b"8bit"),
     "Toplantı", "Toplantı yarın saat beşte.\n"),
    ("tr-windows-1254-labelled", mail(q_word(TR_SUBJECT, "cp1254", "windows-1254"), crlf(TR).encode("cp1254"),
                                      b"text/plain; charset=windows-1254", b"8bit"), TR_SUBJECT, TR),
    ("tr-utf8-labelled-iso-8859-9", mail(q_word(TR_SUBJECT, "utf-8", "iso-8859-9"), crlf(TR).encode(),
                                         b"text/plain; charset=iso-8859-9", b"8bit"), TR_SUBJECT, TR),
    # Greek.
    ("el-iso-8859-7-labelled", mail(b_word(EL_SUBJECT, "iso8859_7", "ISO-8859-7"), crlf(EL).encode("iso8859_7"),
                                    b"text/plain; charset=ISO-8859-7", b"8bit"), EL_SUBJECT, EL),
    ("el-windows-1253-undeclared-subject-says", mail(b_word(EL_SUBJECT, "cp1253", "windows-1253"),
                                                     crlf(EL).encode("cp1253"), None, b"8bit"), EL_SUBJECT, EL),
    ("el-utf8-labelled-iso-8859-7", mail(b_word(EL_SUBJECT, "utf-8", "iso-8859-7"), crlf(EL).encode(),
                                         b"text/plain; charset=iso-8859-7", b"8bit"), EL_SUBJECT, EL),
    # Hebrew.
    ("he-windows-1255-labelled", mail(b_word(HE_SUBJECT, "cp1255", "windows-1255"), crlf(HE).encode("cp1255"),
                                      b"text/plain; charset=windows-1255", b"8bit"), HE_SUBJECT, HE),
    ("he-undeclared-sibling-says", alternative(b_word(HE_SUBJECT, "iso8859_8", "iso-8859-8-i"),
                                               crlf(HE).encode("iso8859_8"), b"text/plain",
                                               b"<p>" + HE.encode("iso8859_8") + b"</p>",
                                               b"text/html; charset=iso-8859-8-i"), HE_SUBJECT, HE),
    # Arabic.
    ("ar-windows-1256-labelled", mail(b_word(AR_SUBJECT, "cp1256", "windows-1256"), crlf(AR).encode("cp1256"),
                                      b"text/plain; charset=windows-1256", b"8bit"), AR_SUBJECT, AR),
    ("ar-utf8-labelled-windows-1256", mail(b_word(AR_SUBJECT, "utf-8"), crlf(AR).encode(),
                                           b"text/plain; charset=windows-1256", b"8bit"), AR_SUBJECT, AR),
    # Thai.
    ("th-tis-620-labelled", mail(b_word(TH_SUBJECT, "tis-620", "TIS-620"), crlf(TH).encode("tis-620"),
                                 b"text/plain; charset=TIS-620", b"8bit"), TH_SUBJECT, TH),
    ("th-windows-874-undeclared-subject-says", mail(b_word(TH_SUBJECT, "cp874", "windows-874"),
                                                    crlf(TH).encode("cp874"), None, b"8bit"), TH_SUBJECT, TH),
    # Vietnamese.
    ("vi-utf8-labelled", mail(b_word(VI_SUBJECT, "utf-8"), crlf(VI).encode(), b"text/plain; charset=utf-8",
                              b"8bit"), VI_SUBJECT, VI),
    ("vi-windows-1258-labelled", mail(b"=?windows-1258?B?" + b64encode(cp1258("Cảm ơn")) + b"?=",
                                      cp1258(crlf(VI_1258)), b"text/plain; charset=windows-1258", b"8bit"),
     cp1258("Cảm ơn").decode("cp1258"), cp1258(VI_1258).decode("cp1258")),
    ("vi-utf8-undeclared", mail(b_word(VI_SUBJECT, "utf-8"), crlf(VI).encode(), None, b"8bit"), VI_SUBJECT, VI),
    # Polish.
    ("pl-iso-8859-2-labelled", mail(q_word(PL_SUBJECT, "iso8859_2", "ISO-8859-2"), crlf(PL).encode("iso8859_2"),
                                    b"text/plain; charset=ISO-8859-2", b"8bit"), PL_SUBJECT, PL),
    ("pl-utf8-labelled-iso-8859-2", mail(q_word(PL_SUBJECT, "utf-8", "iso-8859-2"), crlf(PL).encode(),
                                         b"text/plain; charset=iso-8859-2", b"8bit"), PL_SUBJECT, PL),
    ("pl-windows-1250-undeclared-subject-says-iso-8859-2", mail(q_word(PL_SUBJECT, "iso8859_2", "iso-8859-2"),
                                                                crlf(PL).encode("cp1250"), None, b"8bit"),
     PL_SUBJECT, PL),
    # Czech.
    ("cs-iso-8859-2-labelled-qp", mail(q_word(CS_SUBJECT, "cp1250", "windows-1250"),
                                       b2a_qp(crlf(CS).encode("iso8859_2")), b"text/plain; charset=iso-8859-2",
                                       b"quoted-printable"), CS_SUBJECT, CS),
    ("cs-windows-1250-undeclared-sibling-says", alternative(b"Smlouva", crlf(CS).encode("cp1250"),
                                                            b"text/plain", b"<p>" + CS.encode("cp1250") + b"</p>",
                                                            b"text/html; charset=windows-1250"), "Smlouva", CS),
    # German.
    ("de-iso-8859-1-labelled", mail(q_word(DE_SUBJECT, "latin-1", "ISO-8859-1"), crlf(DE).encode("latin-1"),
                                    b"text/plain; charset=ISO-8859-1", b"8bit"), DE_SUBJECT, DE),
    ("de-latin1-undeclared", mail(b"Unterlagen", crlf(DE).encode("latin-1"), None, b"8bit"), "Unterlagen", DE),
    ("de-utf8-labelled-iso-8859-1", mail(q_word(DE_SUBJECT, "utf-8", "iso-8859-1"), crlf(DE).encode(),
                                         b"text/plain; charset=iso-8859-1", b"8bit"), DE_SUBJECT, DE),
    ("de-iso-8859-15-euro-qp", mail(q_word("Rechnung über 100 €", "iso8859_15", "iso-8859-15"),
                                    b2a_qp(crlf("Betrag: 100 € für Müller\n").encode("iso8859_15")),
                                    b"text/plain; charset=iso-8859-15", b"quoted-printable"),
     "Rechnung über 100 €", "Betrag: 100 € für Müller\n"),
    # French.
    ("fr-windows-1252-undeclared", mail(q_word(FR_SUBJECT, "cp1252", "windows-1252"), crlf(FR).encode("cp1252"),
                                        None, b"8bit"), FR_SUBJECT, FR),
    ("fr-utf8-labelled-us-ascii", mail(q_word(FR_SUBJECT, "utf-8", "us-ascii"), crlf(FR).encode(),
                                       b"text/plain; charset=us-ascii", b"8bit"), FR_SUBJECT, FR),
    # Spanish.
    ("es-iso-8859-1-labelled", mail(q_word(ES_SUBJECT, "latin-1", "iso-8859-1"), crlf(ES).encode("latin-1"),
                                    b"text/plain; charset=iso-8859-1", b"8bit"), ES_SUBJECT, ES),
    ("es-utf8-undeclared", mail(ES_SUBJECT.encode(), crlf(ES).encode(), None, b"8bit"), ES_SUBJECT, ES),
]


def mimekit(*args: str, input: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args, "-"], input=input, capture_output=True)


def test_the_collection_is_as_wide_as_the_issue_asks():
    assert len(CASES) >= 41
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("raw, body", [(case[1], case[3]) for case in CASES], ids=[case[0] for case in CASES])
def test_decode_text_gives_the_body_its_writer_meant(raw, body):
    result = mimekit("decode", "--text", input=raw)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8") == body


@pytest.mark.parametrize("raw, subject", [(case[1], case[2]) for case in CASES], ids=[case[0] for case in CASES])
def test_show_gives_the_subject_its_writer_meant(raw, subject):
    result = mimekit("show", "--json", input=raw)
    headers = json.loads(result.stdout)["headers"]
    assert [header["value"] for header in headers if header["name"] == "Subject"] == [subject]


# -- genuine single-byte text is not taken for UTF-8 ------------------------------------------

SINGLE_BYTE_CODE_PAGES = ["cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
                          "iso8859_1", "iso8859_2", "iso8859_5", "iso8859_7", "iso8859_8", "iso8859_9", "iso8859_13",
                          "iso8859_15", "koi8_r", "koi8_u", "cp874", "mac_roman"]
TEXTS = [JA, KO, ZH, RU, TR, EL, HE, AR, TH, VI, PL, CS, DE, FR, ES, VI_1258, RU_SUBJECT, TR_SUBJECT, EL_SUBJECT,
         HE_SUBJECT, AR_SUBJECT, TH_SUBJECT, PL_SUBJECT, CS_SUBJECT, DE_SUBJECT, FR_SUBJECT, ES_SUBJECT]


def test_genuine_single_byte_text_is_never_taken_for_utf8():
    """The measurement behind is_mislabelled_utf8: every run of words of these texts, as written
    and upper-cased, in every single-byte code page that can write it."""
    from mimekit.codecs.charsets import is_mislabelled_utf8, resolve_charset
    runs = 0
    for text in TEXTS:
        for words in (text.split(), text.upper().split()):
            for codec in SINGLE_BYTE_CODE_PAGES:
                for size in range(1, len(words) + 1):
                    for start in range(len(words) - size + 1):
                        try:
                            data = " ".join(words[start:start + size]).encode(codec)
                        except UnicodeEncodeError:
                            continue
                        if not data.isascii():
                            runs += 1
                            assert not is_mislabelled_utf8(data, resolve_charset(codec)), (codec, data)
    assert runs == 8757   # the number the module docstring of mimekit.codecs.charsets quotes


def test_a_message_s_charset_hints_come_nearest_first_and_ascii_says_nothing():
    import io

    from mimekit.read.charset_hints import charset_hints
    from mimekit.read.tree import parse_message
    raw = (b"Subject: =?ISO-8859-9?Q?Toplant=FD?= =?us-ascii?Q?x?=\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: inline; filename*=windows-1254''a%FD\r\n\r\nmetin\r\n"
           b"--b\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n<p>\r\n--b--\r\n")
    with parse_message(io.BytesIO(raw)) as message:
        assert charset_hints(message.part("1")) == ("windows-1254", "iso-8859-9", "koi8-r")
