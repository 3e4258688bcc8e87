"""Body codecs: base64 and quoted-printable, charsets, uuencode, text from HTML."""
