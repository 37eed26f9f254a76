"""A write's body decoded for review, within `limits.max_body` after decoding too.

mitmproxy's own decoding has no bound: a few kilobytes of gzip can inflate to gigabytes. Only
the encodings that can be inflated with a bound are accepted on writes; anything else is
refused with a clear answer rather than reviewed as bytes nobody can read.
"""

from __future__ import annotations

import zlib

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
CHUNK = 64 * 1024


class DecodingError(ValueError):
    """The body cannot be decoded for review; `status_code` is what the agent is answered."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    wbits = _WBITS[encoding]
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(data, limit + 1)
        if encoding == "deflate" and not out and data and not inflater.eof:
            raise zlib.error("no zlib header")
    except zlib.error:
        if encoding != "deflate":
            raise
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some clients send it
        out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise DecodingError(413, f"the body is over {limit} bytes once decoded; bodies over "
                                 "that are refused (limits.max_body)")
    if not inflater.eof or inflater.unused_data:
        # Another gzip member or trailing bytes: decoders differ on them, so the reviewer
        # could see less than the upstream reads.
        raise DecodingError(400, f"the {encoding} body does not end where its stream ends "
                                 "(a second member, or trailing bytes)")
    return out


def decoded(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as the vendor will read it, never more than `limit` bytes."""
    encodings = [token.strip().lower() for token in (content_encoding or "").split(",")
                 if token.strip() and token.strip().lower() != "identity"]
    body = raw
    for encoding in reversed(encodings):  # the last applied is the first undone
        if encoding not in _WBITS:
            raise DecodingError(415, f"Content-Encoding {encoding!r} is not accepted on writes "
                                     "(gzip, deflate or none): the proxy could not show the "
                                     "reviewer what it says")
        try:
            body = _inflate(body, encoding, limit)
        except zlib.error as exc:
            raise DecodingError(400, f"the body is not valid {encoding}: {exc}") from exc
    return body
