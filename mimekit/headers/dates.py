"""Dates (RFC 5322 §3.3) and Message-IDs (§3.6.4).

Writing uses the RFC 5322 form with a numeric zone. Reading is lenient in the ways real
mail needs (RFC 5322 §4.3 obsolete syntax and common errors): comments and folding
anywhere, missing day of week or seconds, two- and three-digit years, obsolete and military
zone names, a numeric month, the date after the last ';' of a Received field. What cannot
be read as a date gives None and DATE_MALFORMED; a date read with an unknown zone is taken
as UTC with a defect.
"""

import functools
import os
import re
import time
from datetime import datetime, timedelta, timezone

from mimekit.defects import Defect, DefectKind
from mimekit.errors import DataError
from mimekit.headers.folding import read_comment
from mimekit.limits import parse_decimal

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.lower(): number for number, name in enumerate(_MONTHS, 1)}
# RFC 5322 §4.3 obs-zone. Military letters were defined with the wrong sign in RFC 822, so
# their meaning is unknown and they read as -0000 (UTC), like "Z".
_ZONE_HOURS = {"ut": 0, "gmt": 0, "utc": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
               "mst": -7, "mdt": -6, "pst": -8, "pdt": -7}
# The RFC 5322 form nearly all mail has ("Tue, 1 Jul 2003 10:52:37 +0200", a comment such as
# "(UTC)" after it): read by one regex into what the token reading below would read.
_RFC5322_DATE = re.compile(r"[ \t\r\n]*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ?)?([0-9]{1,2}) "
                           r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) ([0-9]{2}):([0-9]{2})"
                           r"(?::([0-9]{2}))? ([+-][0-9]{4})(?: \([A-Za-z0-9 +:-]*\))?[ \t\r\n]*")
_TOKEN = re.compile(r"[0-9]+|[A-Za-z]+|[+-][0-9]+|[^\sA-Za-z0-9]")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_DEFAULT_DOMAIN = "mimekit.invalid"     # RFC 2606: can never be someone else's domain


def format_date(when: datetime | None = None) -> str:
    """RFC 5322 date with a numeric zone, e.g. 'Tue, 01 Jul 2003 10:52:37 +0200'.

    None means now; a naive datetime is taken as local time.
    """
    if when is None or when.tzinfo is None:
        when = (when or datetime.now()).astimezone()
    minutes = int(when.utcoffset().total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return (f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {sign}{hours:02d}{minutes:02d}")


def _without_comments(text: str) -> str | None:
    """The text with comments replaced by spaces, or None if a comment is left open."""
    pieces, done = [], 0
    while (start := text.find("(", done)) != -1:
        pieces.append(text[done:start] + " ")
        _, done, closed = read_comment(text, start)
        if not closed:
            return None
    pieces.append(text[done:])
    return "".join(pieces)


def _year(year: int, digits: int) -> int:
    """RFC 5322 §4.3: two-digit years below 50 are 20xx, others and three-digit ones 19xx."""
    if digits == 2:
        return year + (2000 if year < 50 else 1900)
    if digits == 3:
        return year + 1900
    return year


@functools.lru_cache(maxsize=256)   # mail carries few distinct zones; building one costs more than the date
def _zone(token: str | None) -> tuple[timezone, bool]:
    """(zone, whether it was understood)."""
    if token is None:
        return timezone.utc, False
    if token[0] in "+-":
        digits = token[1:]
        if len(digits) == 4 and int(digits[2:]) < 60 and int(digits[:2]) <= 23:
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            return timezone(-offset if token[0] == "-" else offset), True
        return timezone.utc, False
    letters = token.lower()          # "EST5EDT" arrives here as "EST"
    if letters in _ZONE_HOURS:
        return timezone(timedelta(hours=_ZONE_HOURS[letters])), True
    if len(letters) == 1 and letters != "j":
        return timezone.utc, True   # military zone: unknown local time, RFC 5322 §4.3
    return timezone.utc, False


def parse_date(raw: str) -> tuple[datetime | None, list[Defect]]:
    """Read a Date (or the date part of a Received) field; returns an aware datetime."""
    if (common := _RFC5322_DATE.fullmatch(raw)) is not None:
        day, month, year, hour, minute, second, zone_token = common.groups()
        zone, understood = _zone(zone_token)
        if understood:
            try:
                return datetime(int(year), _MONTH_NUMBER[month.lower()], int(day), int(hour), int(minute),
                                min(int(second or 0), 59), tzinfo=zone), []
            except ValueError:
                pass   # an impossible date: the reading below reports it
    defects: list[Defect] = []

    def malformed(detail: str) -> tuple[None, list[Defect]]:
        defects.append(Defect(DefectKind.DATE_MALFORMED, 0, detail))
        return None, defects

    text = _without_comments(raw.rpartition(";")[2])
    if text is None:
        return malformed("unclosed comment")
    tokens = _TOKEN.findall(text)
    if tokens and tokens[0].lower()[:3] in {d.lower() for d in _DAYS}:
        tokens = tokens[2:] if tokens[1:2] == [","] else tokens[1:]
    # day month year hour ':' minute [':' second] [zone]; a number is 1 to 20 ASCII digits
    numbers = [parse_decimal(tokens[i]) for i in (0, 2, 3, 5)] if len(tokens) >= 6 and tokens[4] == ":" else [None]
    if None in numbers:
        return malformed(f"not a date: {raw.strip()[:60]!r}")
    day, year, hour, minute = numbers
    month = _MONTH_NUMBER.get(tokens[1].lower()[:3]) if tokens[1].isalpha() else parse_decimal(tokens[1])
    second, rest = 0, tokens[6:]
    if rest[:1] == [":"]:
        second = parse_decimal(rest[1]) if len(rest) > 1 else None
        if second is None:
            return malformed("no seconds after ':'")
        rest = rest[2:]
    zone_token = next((t for t in rest if t[0] in "+-" or t.isalpha()), None)
    zone, understood = _zone(zone_token)
    if not understood:
        described = f"zone {zone_token!r}" if zone_token else "no zone"
        defects.append(Defect(DefectKind.DATE_MALFORMED, 0, f"{described}; read as UTC"))
    try:
        when = datetime(_year(year, len(tokens[2])), month or 0, day, hour, minute,
                        min(second, 59), tzinfo=zone)   # a leap second becomes :59
    except (ValueError, OverflowError) as error:
        defects.clear()
        reason = "a number out of range" if isinstance(error, OverflowError) else error   # past a C long
        return malformed(f"impossible date {raw.strip()[:60]!r}: {reason}")
    return when, defects


def make_message_id(domain: str | None = None) -> str:
    """A new globally unique Message-ID, "<time.random@domain>".

    Without a domain the host name is used when it is a fully qualified name; otherwise
    "mimekit.invalid", so that the id never claims someone else's domain.
    """
    if domain is None:
        import socket   # here: reading dates (every scan) needs none of it
        host = socket.gethostname()
        domain = host if "." in host and _DOT_ATOM.fullmatch(host) else _DEFAULT_DOMAIN
    if not _DOT_ATOM.fullmatch(domain):
        raise DataError(f"not a domain for a Message-ID: {domain!r}")
    return f"<{time.time_ns():x}.{os.urandom(8).hex()}@{domain}>"
