"""Malformed INVITEs of the kinds the PROTOS c07-sip suite and RFC 4475 send (the PROTOS files are not on
this machine): missing or misplaced tags, broken headers, bad or hostile SDP. Each message has its own
Call-ID and branch so every one is a new transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

SDP = (
    "v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _invite(n: int, host: str, port: int, lport: int, *, via: str | None = None, ruri: str | None = None,
            from_: str | None = None, to: str | None = None, call_id: str | None = None,
            cseq: str | None = "1 INVITE", contact: str | None = "", extra: str = "",
            body: str | None = None, ctype: str | None = "application/sdp", clen: int | None = None,
            transport: str = "UDP") -> bytes:
    body = SDP.format(host=host, rtp=20000 + 2 * (n % 1000)) if body is None else body
    lines = [
        f"INVITE {ruri or f'sip:bad{n}@{host}:{port}'} SIP/2.0",
        f"Via: {via or f'SIP/2.0/{transport} {host}:{lport};branch=z9hG4bK-mal{n}'}",
        f"From: {from_ if from_ is not None else f'<sip:mal@{host}:{lport}>;tag=m{n}'}",
        f"To: {to if to is not None else f'<sip:bad{n}@{host}:{port}>'}",
        f"Call-ID: {call_id or f'mal{n}@{host}'}",
    ]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines.append("Max-Forwards: 70")
    if contact is not None:
        lines.append(f"Contact: {contact or f'<sip:mal@{host}:{lport};transport={transport.lower()}>'}")
    if ctype is not None and body:
        lines.append(f"Content-Type: {ctype}")
    if extra:
        lines.append(extra.rstrip("\r\n"))
    lines.append(f"Content-Length: {len(body.encode()) if clen is None else clen}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


# name → builder(n, host, port, lport). Each is a different way to be wrong.
Builder = Callable[[int, str, int, int], bytes]
CASES: dict[str, Builder] = {
    "from-no-tag": lambda n, h, p, lp: _invite(n, h, p, lp, from_=f"<sip:mal@{h}:{lp}>"),
    "from-empty-tag": lambda n, h, p, lp: _invite(n, h, p, lp, from_=f"<sip:mal@{h}:{lp}>;tag="),
    "from-bare-uri-no-tag": lambda n, h, p, lp: _invite(n, h, p, lp, from_=f"sip:mal@{h}"),
    "from-garbage": lambda n, h, p, lp: _invite(n, h, p, lp, from_="<nonsense>;tag=x"),
    "from-empty": lambda n, h, p, lp: _invite(n, h, p, lp, from_=""),
    "to-tag-on-initial": lambda n, h, p, lp: _invite(n, h, p, lp, to=f"<sip:bad{n}@{h}:{p}>;tag=preset"),
    "to-garbage": lambda n, h, p, lp: _invite(n, h, p, lp, to="<<<>>>"),
    "from-huge-tag": lambda n, h, p, lp: _invite(n, h, p, lp, from_=f"<sip:mal@{h}>;tag={'t' * 3000}"),
    "two-from": lambda n, h, p, lp: _invite(n, h, p, lp, extra=f"From: <sip:other@{h}>;tag=o{n}"),
    "sdp-garbage": lambda n, h, p, lp: _invite(n, h, p, lp, body="this is not sdp at all\r\n"),
    "sdp-no-media": lambda n, h, p, lp: _invite(n, h, p, lp, body=f"v=0\r\no=- 1 1 IN IP4 {h}\r\ns=-\r\nt=0 0\r\n"),
    "sdp-port-zero": lambda n, h, p, lp: _invite(
        n, h, p, lp, body=f"v=0\r\no=- 1 1 IN IP4 {h}\r\ns=-\r\nc=IN IP4 {h}\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"),
    "sdp-unknown-codec": lambda n, h, p, lp: _invite(
        n, h, p, lp,
        body=f"v=0\r\no=- 1 1 IN IP4 {h}\r\ns=-\r\nc=IN IP4 {h}\r\nt=0 0\r\nm=audio 20000 RTP/AVP 99\r\n"
             "a=rtpmap:99 NOPE/8000\r\n"),
    "sdp-bad-connection": lambda n, h, p, lp: _invite(
        n, h, p, lp,
        body=f"v=0\r\no=- 1 1 IN IP4 {h}\r\ns=-\r\nc=IN IP4 999.1.1.1.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n"),
    "sdp-huge-port": lambda n, h, p, lp: _invite(
        n, h, p, lp,
        body=f"v=0\r\no=- 1 1 IN IP4 {h}\r\ns=-\r\nc=IN IP4 {h}\r\nt=0 0\r\nm=audio 99999999 RTP/AVP 0\r\n"),
    "sdp-many-media": lambda n, h, p, lp: _invite(
        n, h, p, lp,
        body=f"v=0\r\no=- 1 1 IN IP4 {h}\r\ns=-\r\nc=IN IP4 {h}\r\nt=0 0\r\n"
             + "".join(f"m=audio {20000 + 2 * i} RTP/AVP 0\r\n" for i in range(40))),
    "sdp-wrong-ctype": lambda n, h, p, lp: _invite(n, h, p, lp, ctype="text/plain"),
    "sdp-no-ctype": lambda n, h, p, lp: _invite(n, h, p, lp, ctype=None),
    "content-length-long": lambda n, h, p, lp: _invite(n, h, p, lp, clen=5000),
    "content-length-negative": lambda n, h, p, lp: _invite(n, h, p, lp, clen=-5),
    "no-contact": lambda n, h, p, lp: _invite(n, h, p, lp, contact=None),
    "contact-garbage": lambda n, h, p, lp: _invite(n, h, p, lp, contact="garbage"),
    "contact-star": lambda n, h, p, lp: _invite(n, h, p, lp, contact="*"),
    "contact-nul": lambda n, h, p, lp: _invite(n, h, p, lp, contact=f"<sip:\x00@{h}:{lp}>"),
    "no-cseq": lambda n, h, p, lp: _invite(n, h, p, lp, cseq=None),
    "cseq-mismatch": lambda n, h, p, lp: _invite(n, h, p, lp, cseq="1 BYE"),
    "cseq-huge": lambda n, h, p, lp: _invite(n, h, p, lp, cseq="99999999999999 INVITE"),
    "via-no-branch": lambda n, h, p, lp: _invite(n, h, p, lp, via=f"SIP/2.0/UDP {h}:{lp}"),
    "ruri-garbage": lambda n, h, p, lp: _invite(n, h, p, lp, ruri="sip:@@@"),
    "require-unknown": lambda n, h, p, lp: _invite(n, h, p, lp, extra="Require: nonsense-ext"),
    "record-route-garbage": lambda n, h, p, lp: _invite(n, h, p, lp, extra="Record-Route: <:::>"),
    "replaces-unknown": lambda n, h, p, lp: _invite(n, h, p, lp, extra="Replaces: nosuch@x;to-tag=a;from-tag=b"),
    "max-forwards-zero": lambda n, h, p, lp: _invite(n, h, p, lp, extra="Max-Forwards: 0"),
    "callid-empty": lambda n, h, p, lp: _invite(n, h, p, lp, call_id=" "),
}


# The kinds the stack answered "500 Call Error" while keeping the native call (found here, one pass each).
LEAKING = ("from-no-tag", "from-empty-tag", "from-bare-uri-no-tag", "no-contact", "contact-garbage",
           "contact-star", "contact-nul", "record-route-garbage")


def torture_invites(torture_dir: Path) -> list[tuple[str, bytes]]:
    """The RFC 4475 invalid messages that are INVITEs (sent as they are)."""
    out = []
    for path in sorted((torture_dir / "invalid").glob("*.dat")):
        data = path.read_bytes()
        if data.lstrip().upper().startswith(b"INVITE"):
            out.append((f"rfc4475/{path.name}", data))
    return out


def full_pass(host: str, port: int, lport: int, start: int = 0, transport: str = "UDP") -> Iterator[tuple[str, bytes]]:
    """One pass: every case once, numbered from ``start``."""
    for i, (name, build) in enumerate(CASES.items()):
        yield name, build(start + i, host, port, lport) if transport == "UDP" else _tcp(build(start + i, host, port, lport))


def _tcp(packet: bytes) -> bytes:
    return packet.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP").replace(b"transport=udp", b"transport=tcp")


# PROTOS-style mutations: hostile values (empty, overflow, format strings, control and separator
# characters) in the header fields the stack mishandled.
_PAYLOADS = ("", " ", "a" * 300, "a" * 5000, "%s%s%s%n", "\x00", "\x01\x02", "<", ">", '"', ";", ";tag", "@",
             ":", "sip:", "<sip:>", "<sip:@>", '"" <>', "é", ",", "*", "=", ";;;", "\\")


def fuzz_cases(host: str, port: int, lport: int, start: int = 700_000) -> Iterator[tuple[str, bytes]]:
    n = start
    for p in _PAYLOADS:
        variants = {
            "from-uri": {"from_": f"<sip:{p}@{host}>;tag=f{n}"},
            "from-tag": {"from_": f"<sip:a@{host}>;tag={p}"},
            "from-display": {"from_": f'"{p}" <sip:a@{host}>;tag=f{n}'},
            "to-uri": {"to": f"<sip:{p}@{host}:{port}>"},
            "contact-uri": {"contact": f"<sip:{p}@{host}:{lport}>"},
            "contact-display": {"contact": f'"{p}" <sip:a@{host}:{lport}>'},
            "call-id": {"call_id": f"{p}{n}"},
            "cseq": {"cseq": f"{p} INVITE"},
            "record-route": {"extra": f"Record-Route: {p}"},
        }
        for field, kw in variants.items():
            n += 1
            yield f"{field}:{p[:10]!r}", _invite(n, host, port, lport, **kw)  # type: ignore[arg-type]
