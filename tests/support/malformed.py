"""A corpus of malformed e-mails, as broken clients, old mailers and attackers send them:
broken boundaries, wrong and unknown charsets, 8-bit headers, bad base64 and
quoted-printable, multiparts nested 100 and 1,000 deep, 5 MB bodies. Each is (name, raw
bytes); each carries, somewhere, a body that would be valid."""

from __future__ import annotations

import base64

BODY = "U-ACME\r\nT-hello\r\n#-33612345678\r\n"
HEAD = "From: office@acme.example\r\nTo: sms@localhost\r\nSubject: campaign\r\nMIME-Version: 1.0\r\n"
FIVE_MB = 5 * 1024 * 1024


def _mail(headers: str, body: str | bytes) -> bytes:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return (HEAD + headers).encode("utf-8") + b"\r\n" + raw


def _multipart(boundary: str, parts: list[str], close: bool = True) -> str:
    text = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return text + (f"--{boundary}--\r\n" if close else "")


def _nested(depth: int) -> str:
    text = f"Content-Type: text/plain\r\n\r\n{BODY}"
    for level in range(depth):
        text = f"Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n" + _multipart(f"b{level}", [text])
    return text


PLAIN = "Content-Type: text/plain\r\n\r\n" + BODY

BROKEN_BOUNDARIES = [
    ("boundary missing from the header", _mail("Content-Type: multipart/mixed\r\n", _multipart("b", [PLAIN]))),
    ("boundary declared, never used", _mail("Content-Type: multipart/mixed; boundary=b\r\n", BODY)),
    ("closing boundary missing", _mail("Content-Type: multipart/mixed; boundary=b\r\n",
                                       _multipart("b", [PLAIN], close=False))),
    ("boundary in another case", _mail("Content-Type: multipart/mixed; boundary=B\r\n", _multipart("b", [PLAIN]))),
    ("empty boundary", _mail('Content-Type: multipart/mixed; boundary=""\r\n', _multipart("", [PLAIN]))),
    ("boundary of 300 characters", _mail(f"Content-Type: multipart/mixed; boundary={'x' * 300}\r\n",
                                         _multipart("x" * 300, [PLAIN]))),
    ("parts without headers", _mail("Content-Type: multipart/mixed; boundary=b\r\n", _multipart("b", ["\r\n" + BODY]))),
    ("nested part reusing the boundary", _mail("Content-Type: multipart/mixed; boundary=b\r\n", _multipart(
        "b", ["Content-Type: multipart/mixed; boundary=b\r\n\r\n" + _multipart("b", [PLAIN])]))),
    ("preamble only", _mail("Content-Type: multipart/mixed; boundary=b\r\n", "This is a preamble.\r\n" + BODY)),
    ("body in the epilogue", _mail("Content-Type: multipart/mixed; boundary=b\r\n",
                                   _multipart("b", ["Content-Type: text/plain\r\n\r\nnothing"]) + BODY)),
    ("alternative with both empty", _mail("Content-Type: multipart/alternative; boundary=b\r\n", _multipart(
        "b", ["Content-Type: text/plain\r\n\r\n", "Content-Type: text/html\r\n\r\n"]))),
]

CHARSETS = [
    ("unknown charset", _mail("Content-Type: text/plain; charset=x-klingon\r\n", BODY)),
    ("utf-8 declared, latin-1 sent", _mail("Content-Type: text/plain; charset=utf-8\r\n",
                                           "U-ACME\r\nT-caf\xe9 cr\xe8me\r\n#-33612345678\r\n".encode("latin-1"))),
    ("empty charset", _mail("Content-Type: text/plain; charset=\r\n", BODY)),
    ("charset with stray quotes", _mail('Content-Type: text/plain; charset="utf-8\r\n', BODY)),
    ("utf-16 without a byte order mark", _mail("Content-Type: text/plain; charset=utf-16\r\n",
                                               BODY.encode("utf-16-le"))),
    ("utf-7", _mail("Content-Type: text/plain; charset=utf-7\r\n", BODY.replace("hello", "+AOk-t+AOk-"))),
    ("iso-2022-jp", _mail("Content-Type: text/plain; charset=iso-2022-jp\r\n",
                          ("U-ACME\r\nT-" + "日本語" + "\r\n#-33612345678\r\n").encode("iso-2022-jp"))),
    ("ascii declared, 8-bit sent", _mail("Content-Type: text/plain; charset=us-ascii\r\n",
                                         "U-ACME\r\nT-ça\r\n#-33612345678\r\n".encode())),
    ("charset given twice", _mail("Content-Type: text/plain; charset=utf-8; charset=koi8-r\r\n", BODY)),
    ("RFC 2231 charset cut short", _mail("Content-Type: text/plain; charset*=utf-8''%E2%82\r\n", BODY)),
    ("charset named by a long garbage", _mail(f"Content-Type: text/plain; charset={'q' * 500}\r\n", BODY)),
]

EIGHT_BIT_HEADERS = [
    ("raw UTF-8 subject", _mail("Subject: Réunion à 10h ☕\r\n", BODY)),
    ("latin-1 sender name", ("From: Ren\xe9 <office@acme.example>\r\nTo: sms@localhost\r\n\r\n" + BODY)
     .encode("latin-1")),
    ("broken encoded word", _mail("Subject: =?utf-8?B?!!!notbase64?=\r\n", BODY)),
    ("header line without a colon", _mail("This is not a header\r\n", BODY)),
    ("header line of 100 KB", _mail(f"X-Long: {'a' * 100_000}\r\n", BODY)),
    ("NUL in a header", _mail("X-Nul: a\x00b\r\n", BODY)),
    ("8-bit Message-ID", _mail("Message-ID: <caf\xe9@acme.example>\r\n", BODY)),
    ("Content-Type given twice", _mail("Content-Type: text/html\r\nContent-Type: text/plain\r\n", BODY)),
    ("continuation line first", (" folded\r\n" + HEAD + "\r\n" + BODY).encode()),
]

BAD_ENCODINGS = [
    ("base64 with invalid characters", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                                             "!!!" + base64.b64encode(BODY.encode()).decode() + "***")),
    ("base64 without padding", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                                     base64.b64encode(BODY.encode()).decode().rstrip("="))),
    ("base64 cut short", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                               base64.b64encode(BODY.encode()).decode()[:-5])),
    ("base64 of garbage bytes", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                                      base64.b64encode(bytes(range(256)) * 4).decode())),
    ("base64 declared, plain sent", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n", BODY)),
    ("broken quoted-printable", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                                      BODY.replace("hello", "h=ZZel=\r\nlo=E"))),
    ("unknown transfer encoding", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n",
                                        BODY)),
    ("8bit with NUL bytes", _mail("Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n",
                                  BODY.encode() + b"\x00\x00\xff\xfe")),
    ("base64 html with a script", _mail("Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n",
                                        base64.b64encode(b"<script>alert(1)</script><p>U-ACME<br>T-hi<br>"
                                                         b"#-33612345678</p>").decode())),
]

NESTED = [
    ("multiparts 100 deep", _mail("", _nested(100))),
    ("multiparts 1,000 deep", _mail("", _nested(1000))),
    ("multiparts 5,000 deep", _mail("", _nested(5000))),
    ("1,000 parts side by side", _mail("Content-Type: multipart/mixed; boundary=b\r\n",
                                       _multipart("b", [PLAIN] * 1000))),
    ("a forwarded e-mail only", _mail("Content-Type: message/rfc822\r\n", HEAD + "\r\n" + BODY)),
]

BIG = [
    ("5 MB of recipients", _mail("Content-Type: text/plain\r\n", "U-ACME\r\nT-hi\r\n"
                                 + "#-33612345678\r\n" * (FIVE_MB // 15))),
    ("5 MB of garbage", _mail("Content-Type: application/octet-stream\r\n", bytes(range(256)) * (FIVE_MB // 256))),
    ("5 MB on one line", _mail("Content-Type: text/plain\r\n", BODY + "x" * FIVE_MB)),
    ("5 MB of HTML", _mail("Content-Type: text/html\r\n", "<p>" + BODY.replace("\r\n", "<br>") + "</p>" + "<div>a</div>\r\n" * (FIVE_MB // 14))),
    ("500 KB of HTML on one line", _mail("Content-Type: text/html\r\n",
                                         "<p>" + BODY.replace("\r\n", "<br>") + "</p>" + "<i>a</i>" * 64_000)),
    ("5 MB base64 attachment", _mail("Content-Type: multipart/mixed; boundary=b\r\n", _multipart("b", [
        PLAIN, "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"%PDF" * (FIVE_MB // 4)).decode()]))),
]

ODD = [
    ("empty message", b""),
    ("headers only", HEAD.encode()),
    ("a lone blank line", b"\r\n"),
    ("bare CR line ends", (HEAD + "\r\n" + BODY).replace("\r\n", "\r").encode()),
    ("text/html with comments hiding lines", _mail("Content-Type: text/html\r\n",
                                                   "<!-- U-OTHER --><p>" + BODY.replace("\r\n", "<br>") + "</p>")),
    ("twenty-one bodies", _mail("Content-Type: multipart/mixed; boundary=b\r\n", _multipart("b", [PLAIN] * 21))),
    ("a body with a U- line only", _mail("Content-Type: text/plain\r\n", "U-ACME\r\n")),
]

CORPUS: list[tuple[str, bytes]] = BROKEN_BOUNDARIES + CHARSETS + EIGHT_BIT_HEADERS + BAD_ENCODINGS + NESTED + BIG + ODD
