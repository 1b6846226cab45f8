"""Bodies, mails and compositions the tests share."""

from __future__ import annotations

import random
from datetime import datetime
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from ecosms_gw.core.compose import Composition, Message


def composition(count: int, send_at: datetime | None = None, segments: int = 1) -> Composition:
    messages = [Message(f"+336{n:08d}", f"text {n}", "gsm7", 6, segments, send_at, n + 3, 1)
                for n in range(count)]
    return Composition("ACME", send_at, messages, [], [])


def headers(message: EmailMessage | MIMEMultipart | MIMEText) -> bytes:
    message["From"] = "office@example.com"
    message["To"] = "sms@localhost"
    message["Subject"] = "SMS campaign"
    return message.as_bytes()


BODY = "U-ACME\nT-Hello été\n#-33612345678\n"


def plain(text: str, charset: str = "utf-8") -> bytes:
    message = EmailMessage()
    message.set_content(text, charset=charset)
    return headers(message)


def alternative(plain_text: str, html: str) -> MIMEMultipart:
    message = MIMEMultipart("alternative")
    message.attach(MIMEText(plain_text, "plain", "utf-8"))
    message.attach(MIMEText(html, "html", "utf-8"))
    return message


HTML_BODY = ("<html><head><title>U-TITLE</title><style>p{}</style></head><body>"
             "<p>U-ACME</p><div>T-Hello&nbsp;&nbsp;<b>été</b></div>#-33612345678<br>"
             "<script>var x='U-JS';</script></body></html>")


ADVANCED = """U-DEMO
T>Hello #1# #2#,
T-You car is ready.
T-Best regards
#-447123456789;M;SMITH
#-441234567891;Mrs;JONES
"""


VENDOR_EXAMPLE = """U-code
D-2017-08-04T12:30:00
T-first text message for 3 recipients
#-447123456789
#-441234567891
#-441234567892
T-second text message
T-for 2 recipients
#-441234567893
#-441234567894
T-last text message for 3
#-441234567895
#-441234567896
#-441234567897
"""


def mixed_numbers(count: int) -> list[str]:
    """French mobiles and fixed lines as people write them, premium and toll-free numbers,
    British and American numbers, and numbers no rule accepts."""
    pick = random.Random(17)
    makers = [lambda: f"06{pick.randrange(10**8):08d}", lambda: f"+33 1 {pick.randrange(10**8):08d}",
              lambda: f"0899{pick.randrange(10**6):06d}", lambda: f"0800{pick.randrange(10**6):06d}",
              lambda: f"+447{pick.randrange(10**9):09d}", lambda: f"+44 20 {pick.randrange(10**8):08d}",
              lambda: f"+1{pick.randrange(200, 999)}{pick.randrange(10**7):07d}", lambda: f"0{pick.randrange(10**5)}",
              lambda: f"+{pick.randrange(10**4)}", lambda: "06-ABC-" + str(pick.randrange(100))]
    return [pick.choice(makers)() for _ in range(count)]
