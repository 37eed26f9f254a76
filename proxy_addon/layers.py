"""Every byte an intercepted connection carries is parsed as HTTP by the proxy, or it is closed.

mitmproxy guesses from a connection's first bytes whether it speaks HTTP and pipes it raw to the
upstream when it thinks not (a request line split across TLS records, a leading CRLF), and after
any non-WebSocket `101`. A piped connection is never held, recorded or counted. So the options
that open a pipe are refused at start-up, and this addon replaces any raw layer that still comes
up with an error-and-close, except for tunnels to `passthrough_hosts` (mitmproxy's ignored
connections, which this addon makes itself).

It also bounds request bodies while they are read: mitmproxy's own `body_size_limit` would cut
large answers to reads too, and a chunked body declares no size up front.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from mitmproxy import flow as mitmflow
from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer, layers, mode_specs
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    HttpErrorHook,
    RequestEndOfMessage,
    ResponseProtocolError,
    SendHttp,
)
from mitmproxy.proxy.layers.http._http1 import Http1Server, make_error_response

from proxy_addon import answers
from proxy_addon.flow_note import note

logger = logging.getLogger("hitl_proxy")

# Options that make mitmproxy forward bytes it has not parsed as HTTP (or before our hook).
_PIPE_OPTIONS = {
    "rawtcp": "pipes connections that do not look like HTTP to the upstream unparsed",
    "tcp_hosts": "pipes connections to these hosts to the upstream unparsed",
    "udp_hosts": "pipes UDP to these hosts to the upstream unparsed",
    "ignore_hosts": "pipes tunnels to these hosts unparsed (use passthrough_hosts in the config)",
    "allow_hosts": "pipes tunnels to every other host unparsed",
    "stream_large_bodies": "sends a large request upstream before it can be held",
    "keep_host_header": "sends the agent's Host header rather than the host reviewed",
}
_SAFE_REVERSE_SCHEMES = ("http", "https")
_SAFE_MODES = (mode_specs.RegularMode, mode_specs.UpstreamMode, mode_specs.Socks5Mode)


class UnsafeOptionError(ValueError):
    """A mitmproxy option or mode that would let bytes reach an upstream unparsed."""


def check_options(options: Any) -> None:
    """Refuse, at start-up, every setting that re-opens the raw pipe."""
    for name, why in _PIPE_OPTIONS.items():
        value = getattr(options, name)
        if value:
            raise UnsafeOptionError(f"--set {name} is refused: it {why}")
    for spec in options.mode:
        mode = mode_specs.ProxyMode.parse(spec)
        if isinstance(mode, mode_specs.ReverseMode):
            if mode.scheme not in _SAFE_REVERSE_SCHEMES:
                raise UnsafeOptionError(
                    f"--mode {spec} is refused: only http and https reverse modes carry HTTP")
        elif not isinstance(mode, _SAFE_MODES):
            raise UnsafeOptionError(
                f"--mode {spec} is refused: only regular, upstream, socks5 and reverse "
                "http(s) modes are supported")


class _Refuse(layer.Layer):
    """Closes the client's connection, saying why in the log: the connection is not HTTP."""

    def __init__(self, context: Any, reason: str) -> None:
        super().__init__(context)
        self.reason = reason

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield commands.Log(f"closed a connection that is not HTTP: {self.reason}",
                               logging.WARNING)
            yield commands.CloseConnection(self.context.client)
            if self.context.server.connected:
                yield commands.CloseConnection(self.context.server)


def _too_large(max_body: int) -> http.Response:
    answer = answers.refused(413, f"the request body is over {max_body} bytes; bodies over "
                                  "that are refused (limits.max_body)")
    answer.headers["Connection"] = "close"
    return answer


def _bounded_stream(max_body: int) -> type[http_layers.HttpStream]:
    class BoundedHttpStream(http_layers.HttpStream):
        """Refuses a request body (413) the moment it passes `limits.max_body`, or declares it.

        A declared size is answered at once and the body read and dropped as it comes, so the
        client (still sending) reads the answer instead of a reset; a chunked body is cut off
        with the answer, since nothing says when it would end.
        """

        def check_body_size(self, request: bool) -> layer.CommandGenerator[bool]:
            if request and not self.request_body_buf and self._declared() > max_body:
                return (yield from self._refuse(drain=True))
            if request and len(self.request_body_buf) > max_body:
                return (yield from self._refuse(drain=False))
            return (yield from super().check_body_size(request))

        def _declared(self) -> int:
            declared = self.flow.request.headers.get("content-length", "0").strip()
            return int(declared) if declared.isascii() and declared.isdigit() else 0

        def _refuse(self, drain: bool) -> layer.CommandGenerator[bool]:
            answer = _too_large(max_body)
            self.flow.error = mitmflow.Error(answer.text or "body too large")
            note(self.flow).decision = "refused"
            self.flow.response = answer
            yield HttpErrorHook(self.flow)
            self.request_body_buf.clear()
            self.flow.live = False
            if self.flow.request.is_http11 or self.flow.request.is_http10:
                yield commands.SendData(self.context.client, http1.assemble_response(answer))
                if drain:
                    self.client_state = self._drain
                    return True
                yield commands.CloseConnection(self.context.client)
            else:
                yield SendHttp(ResponseProtocolError(self.stream_id, answer.text or "",
                                                     ErrorCode.REQUEST_TOO_LARGE),
                               self.context.client)
            self.client_state = self.state_errored
            return True

        def _drain(self, event: events.Event) -> layer.CommandGenerator[None]:
            """The declared body, read and dropped; then the connection ends."""
            self.request_body_buf.clear()
            if isinstance(event, RequestEndOfMessage):
                yield commands.CloseConnection(self.context.client)
                self.client_state = self.state_errored

    return BoundedHttpStream


MAX_EMPTY_LINES = 8  # before a request line; more is not a client being lenient
MAX_HEAD = 64 * 1024  # a request head (line and headers) larger than this is refused


class _PaddedHttp1Server(Http1Server):
    """Ignores a few empty lines before a request line, as RFC 9112 2.2 asks of servers, and
    bounds the request head (mitmproxy buffers an unfinished head without limit).

    h11's buffer drops one empty line per call and then waits for more bytes, so the request
    right behind it (in the same TLS record) would wait forever: read on while bytes are left.
    """

    _empty_lines = 0

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        while True:
            before = len(self.buf)
            yield from super().read_headers(event)
            if not isinstance(event, events.DataReceived) or self.state != self.read_headers:
                self._empty_lines = 0
                return
            consumed = before - len(self.buf)
            if consumed == 0:  # an unfinished head: wait for its bytes, up to a bound
                if len(self.buf) > MAX_HEAD:
                    yield from self._refuse(431, f"the request head is over {MAX_HEAD} bytes")
                return
            self._empty_lines += 1
            if self._empty_lines > MAX_EMPTY_LINES:
                yield from self._refuse(400, f"more than {MAX_EMPTY_LINES} empty lines before "
                                             "a request line")
                return
            if not len(self.buf):
                return

    def _refuse(self, status_code: int, message: str) -> layer.CommandGenerator[None]:
        yield commands.SendData(self.conn, make_error_response(status_code, message))
        yield commands.CloseConnection(self.conn)
        self.state = self.done


def _bounded_http_layer(max_body: int) -> type[layers.HttpLayer]:
    stream = _bounded_stream(max_body)

    class BoundedHttpLayer(layers.HttpLayer):
        def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
            if isinstance(event, events.Start) and self.context.client.alpn in (None, b"",
                                                                               b"http/1.1"):
                self.connections.setdefault(self.context.client,
                                            _PaddedHttp1Server(self.context.fork()))
            yield from super()._handle_event(event)

        def make_stream(self, stream_id: int) -> layer.CommandGenerator[None]:
            ctx = self.context.fork()
            self.streams[stream_id] = stream(ctx, stream_id)
            yield from self.event_to_child(self.streams[stream_id], events.Start())

    return BoundedHttpLayer


def _chain(top: layer.Layer) -> list[layer.Layer]:
    found = [top]
    while (child := getattr(found[-1], "child_layer", None)) is not None:
        found.append(child)
    return found


class HttpOnly:
    """The `next_layer` hook that runs after mitmproxy's own and corrects its choice.

    Passthrough is decided here, from the CONNECT's own authority alone: mitmproxy's
    `ignore_hosts` also matches the first request's Host header and the TLS SNI, which the agent
    controls, so a tunnel to any host could be piped by naming a passthrough host in them.
    """

    def __init__(self, max_body: int, passthrough_hosts: Iterable[str] = ()) -> None:
        self.max_body = max_body
        self.passthrough = [glob.lower() for glob in passthrough_hosts]
        self._http_layer = _bounded_http_layer(max_body)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        chosen = nextlayer.layer
        if chosen is None:
            return  # mitmproxy waits for more bytes before it decides
        connect = self._connect_right_above(nextlayer.context, chosen)
        if connect is not None and self._passes_through(connect.host):
            for made in _chain(chosen):
                if made in nextlayer.context.layers:
                    nextlayer.context.layers.remove(made)
            nextlayer.layer = layers.TCPLayer(nextlayer.context, ignore=True)
            return
        nextlayer.layer = self._corrected(chosen)

    def _passes_through(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return any(fnmatchcase(name, glob) for glob in self.passthrough)

    @staticmethod
    def _connect_right_above(context: Any, chosen: layer.Layer) -> http.Request | None:
        """The CONNECT request when this decision is the first inside its tunnel."""
        made = {id(item) for item in _chain(chosen)}
        stack = [item for item in context.layers if id(item) not in made]
        if not stack or not isinstance(stack[-1], http_layers.HttpStream):
            return None
        flow = getattr(stack[-1], "flow", None)
        request = getattr(flow, "request", None)
        return request if request is not None and request.method == "CONNECT" else None

    def _corrected(self, chosen: layer.Layer) -> layer.Layer:
        """The same stack with raw layers refused and HTTP layers bounded."""
        replaced = self._replace(chosen)
        parent = replaced
        while (child := getattr(parent, "child_layer", None)) is not None:
            fixed = self._replace(child)
            if fixed is not child:
                parent.child_layer = fixed
            parent = fixed
        return replaced

    def _replace(self, candidate: layer.Layer) -> layer.Layer:
        if isinstance(candidate, layers.HttpLayer) and not isinstance(candidate,
                                                                       self._http_layer):
            if candidate in candidate.context.layers:
                candidate.context.layers.remove(candidate)
            return self._http_layer(candidate.context, candidate.mode)
        if isinstance(candidate, layers.TCPLayer | layers.UDPLayer):
            # Ours (passthrough) never come here: any raw layer mitmproxy chose is refused.
            return _Refuse(candidate.context, "raw TCP/UDP is never piped")
        if isinstance(candidate, layers.DNSLayer | layers.RawQuicLayer):
            return _Refuse(candidate.context, f"{type(candidate).__name__} is not HTTP")
        return candidate
