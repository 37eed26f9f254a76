"""Header fields are one line each: a value with CR, LF or NUL is refused, never forwarded.

mitmproxy keeps obsolete line folding (joined with CRLF and a space) and bare CRs in values and
forwards them as received; a lenient upstream could read the rest of such a line as another
header (a method override, a Transfer-Encoding smuggled behind a read). RFC 9112 5.2 and 2.2 let
a proxy reject such messages, which is what we do.
"""

from __future__ import annotations

from mitmproxy import http

from proxy_addon import answers
from proxy_addon.flow_note import note

_FORBIDDEN = (b"\r", b"\n", b"\x00")


class RequestHygiene:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        codings = [value.strip().lower() for value in
                   ",".join(flow.request.headers.get_all("transfer-encoding")).split(",")
                   if value.strip()]
        if codings and codings != ["chunked"]:
            # gzip as a transfer coding: bytes the reviewer is shown undecoded, which an
            # upstream would decode.
            note(flow).decision = "refused"
            flow.response = answers.refused(
                400, f"Transfer-Encoding {', '.join(codings)!r} is refused: only chunked")
            return
        for name, value in flow.request.headers.fields:
            if any(byte in value or byte in name for byte in _FORBIDDEN):
                note(flow).decision = "refused"
                flow.response = answers.refused(
                    400, f"the header {name.decode('latin-1')!r} spans lines or carries a NUL "
                         "(obsolete line folding, a bare CR): refused")
                return
