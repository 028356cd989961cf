"""Tiny, forgiving parsers for the few SIP header values sipcore looks at.

Inputs come off the network: every function accepts garbage and returns
empty values rather than raising.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME_ADDR = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>')
_VIA = re.compile(r"^\s*SIP\s*/\s*2\.0\s*/\s*[A-Za-z]+\s+(\[[^\]]+\]|[^\s;:]+)(?::(\d+))?", re.I)


@dataclass(frozen=True)
class NameAddr:
    display: str
    uri: str
    user: str
    host: str


def parse_uri(uri: str) -> tuple[str, str]:
    """``sip:user@host:port;params`` → (user, host:port). Missing parts are ''."""
    rest = uri.strip()
    for scheme in ("sips:", "sip:", "tel:"):
        if rest.lower().startswith(scheme):
            rest = rest[len(scheme) :]
            break
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    if "@" in rest:
        user, host = rest.rsplit("@", 1)
        return user, host
    if uri.strip().lower().startswith("tel:"):
        return rest, ""
    return "", rest


def parse_name_addr(value: str | None) -> NameAddr:
    """Parse a From/To/Contact value (name-addr or bare addr-spec)."""
    if not value:
        return NameAddr("", "", "", "")
    match = _NAME_ADDR.match(value)
    if match:
        display = (match.group(1) if match.group(1) is not None else match.group(2) or "").strip()
        display = re.sub(r"\\(.)", r"\1", display)
        uri = match.group(3).strip()
    else:
        display = ""
        uri = value.split(";", 1)[0].strip()
    user, host = parse_uri(uri)
    return NameAddr(display, uri, user, host)


def parse_via_source(value: str | None) -> tuple[str | None, int | None]:
    """Source of a request from its top Via: ``received``/``rport`` when present,
    else the sent-by host and port (5060 when absent)."""
    if not value:
        return None, None
    top = value.split(",", 1)[0]
    match = _VIA.match(top)
    if not match:
        return None, None
    host: str | None = match.group(1).strip("[]")
    port: int | None = int(match.group(2)) if match.group(2) else 5060
    params = {}
    for part in top.split(";")[1:]:
        key, _, val = part.partition("=")
        params[key.strip().lower()] = val.strip()
    if params.get("received"):
        host = params["received"]
    if params.get("rport", "").isdigit():
        port = int(params["rport"])
    return host, port


def initial_invite_problem(headers: dict[str, str | None]) -> str | None:
    """Why an initial INVITE is malformed in a way the stack would mishandle, as a 400 reason phrase
    (None: let it through). ``headers``: first values of From, To, Contact, CSeq, Record-Route."""
    cseq = (headers.get("CSeq") or "").split()
    if len(cseq) != 2 or cseq[1].upper() != "INVITE":
        return None  # not an INVITE (or the stack's own parser deals with it)
    to = headers.get("To") or ""
    if _has_param(to, "tag"):
        return None  # in-dialog re-INVITE: the dialog layer handles it
    for name in ("From", "To", "Contact", "Record-Route"):
        if _CONTROL.search(headers.get(name) or ""):
            return f"Bad Request - control character in {name}"
    from_ = headers.get("From")
    if not from_ or not _has_param(from_, "tag", nonempty=True):
        return "Bad Request - From tag missing"
    contact = headers.get("Contact")
    if contact is None:
        return "Bad Request - Contact missing"
    if not re.search(r"(^|<|\s)sips?:[^\s>]*[\w\]]", contact, re.I):
        return "Bad Request - Contact is not a SIP URI"
    route = headers.get("Record-Route")
    if route is not None and not re.search(r"<sips?:[^>]*\w[^>]*>", route, re.I):
        return "Bad Request - Record-Route malformed"
    return None


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _has_param(value: str, name: str, *, nonempty: bool = False) -> bool:
    rest = value.rsplit(">", 1)[1] if ">" in value else value
    for part in rest.split(";")[1:]:
        key, eq, val = part.partition("=")
        if key.strip().lower() == name:
            return bool(val.strip()) if nonempty else bool(eq) or True
    return False
