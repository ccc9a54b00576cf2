"""The hostile-input corpus, shared by the tests that attack the apps: cookies and headers
(``tests/test_hostile_input.py``), every parameter of the example's routes (``tests/test_hostile_identifiers.py``),
and every endpoint the routers mount (``tests/test_routers_attacks.py``).

- ``SQL`` and ``NASTY``: raw values an attacker's client sends in a header, a cookie or a field (NUL, CR/LF
  injection carrying ``MARKER``, invalid UTF-8, a right-shaped unknown value, a megabyte).
- ``HOSTILE_IDENTIFIERS``: the values that once answered 500 (issue 11), as text for a JSON body (a lone surrogate
  included) and as URL bytes for a path, a query or a form.
- ``HOSTILE_BODIES``: whole bodies no endpoint can read, whatever its fields: not JSON, not an object, nested past
  the recursion limit, numbers past int()'s digit limit, forms Starlette cannot parse, oversized ones, types that
  are neither JSON nor a form.
"""

from __future__ import annotations

MARKER = b"pwned"  # any response header (or error body) carrying this came from attacker input

SQL = [b"' OR '1'='1", b"'; DROP TABLE auth_session; --", b'" OR 1=1 --', b"%' UNION SELECT * FROM auth_key --"]
NASTY = [
    b"\x00",
    b"\r\nSet-Cookie: auth_session=" + MARKER,
    b"\nX-Injected: " + MARKER,
    b"\xff\xfe\xfd",
    b"\xc3\x28",  # invalid UTF-8
    b"null",
    b"A" * 32,  # the right shape, unknown to the server
    b"A" * 1_000_000,
]

# name -> the value as a Python string (JSON bodies carry it exactly, a lone surrogate included) and as URL bytes
# (a form or a path cannot carry a lone surrogate: its UTF-8 would be invalid, which is just as hostile).
HOSTILE_IDENTIFIERS: dict[str, tuple[str, bytes]] = {
    "nul": ("ada\x00@example.com", b"ada%00@example.com"),
    "lone surrogate": ("ada\ud800@example.com", b"ada%ED%A0%80@example.com"),
    "oversized": ("a" * 100_000 + "@example.com", b"a" * 100_000 + b"@example.com"),
}

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_DEPTH = 30_000  # past any recursion limit, inside a 64 KiB body
_MULTIPART_FILE = (
    b'--x\r\nContent-Disposition: form-data; name="email"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n'
    b"file content\r\n--x--\r\n"
)

# name -> (Content-Type or None for none at all, the raw body)
HOSTILE_BODIES: dict[str, tuple[str | None, bytes]] = {
    "not json": (JSON, b"{not json"),
    "truncated json": (JSON, b'{"email": "a'),
    "invalid utf-8 in json": (JSON, b'{"email": "\xff\xfe", "password": "\xc3\x28"}'),
    "utf-8 encoded surrogate in json": (JSON, b'{"email": "\xed\xa0\x80", "code": "\xed\xb0\x80"}'),
    "utf-16 json": (JSON, '{"email": "ada@example.com"}'.encode("utf-16")),
    "json with a byte order mark": (JSON, b'\xef\xbb\xbf{"email": "ada@example.com"}'),
    "json array": (JSON, b'[{"email": "ada@example.com"}]'),
    "json string": (JSON, b'"ada@example.com"'),
    "json number": (JSON, b"42"),
    "json null": (JSON, b"null"),
    "json true": (JSON, b"true"),
    "deeply nested array": (JSON, b"[" * _DEPTH + b"]" * _DEPTH),
    "deeply nested object": (JSON, b'{"a":' * (_DEPTH // 4) + b"1" + b"}" * (_DEPTH // 4)),
    "deeply nested field": (JSON, b'{"email": ' + b"[" * _DEPTH + b"]" * _DEPTH + b"}"),
    "number past the digit limit": (JSON, b'{"email": ' + b"9" * 5_000 + b', "code": 1e999999}'),
    "NaN and Infinity": (JSON, b'{"email": NaN, "password": Infinity, "code": -Infinity}'),
    "duplicate keys": (JSON, b'{"email": "ada@example.com", "email": {"$ne": null}}'),
    "empty json body": (JSON, b""),
    "whitespace json body": (JSON, b" \r\n\t "),
    "oversized json": (JSON, b'{"email": "' + b"a" * 100_000 + b'"}'),
    "oversized garbage, no content type": (None, b"\x00\xff" * 50_000),
    "form with bad percent escapes": (FORM, b"email=%zz%&password=%e"),
    "form with invalid utf-8": (FORM, b"email=%ff%fe%00&password=%ED%A0%80&code=%c3%28"),
    "form with raw bytes": (FORM, b"email=\xff\xfe\x00&password=\x00\r\n"),
    "form with repeated fields": (FORM, b"email=a&email=b&email=c&password=1&password=2"),
    "form with too many fields": (FORM, b"&".join(b"f%d=x" % n for n in range(3_000))),
    "form without equals signs": (FORM, b"&&&justtext&=&=="),
    "oversized form": (FORM, b"email=" + b"a" * 100_000),
    "form in another charset": (f"{FORM}; charset=utf-16", "email=ada@example.com".encode("utf-16")),
    "multipart without a boundary": ("multipart/form-data", b"--x\r\n\r\n--x--"),
    "multipart with a file": ("multipart/form-data; boundary=x", _MULTIPART_FILE),
    "multipart part without a name": (
        "multipart/form-data; boundary=x",
        b"--x\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--x--\r\n",
    ),
    "multipart unterminated": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\nada',
    ),
    "multipart garbage": ("multipart/form-data; boundary=x", b"\x00\xff" * 100),
    "text/plain": ("text/plain", b"email=ada@example.com"),
    "xml": ("application/xml", b"<email>ada@example.com</email>"),
    "json suffix type with an array": ("application/merge-patch+json", b"[]"),
    "json with an unknown charset": (f"{JSON}; charset=klingon", b'{"email": "ada@example.com"}'),
    "garbage content type": (";;;=\x7f", b'{"email": "ada@example.com"}'),
    "json without a content type": (None, b'{"email": 42}'),
}
