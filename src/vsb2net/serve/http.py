"""The HTTP/1.1 connection of ``vsb2net serve``: uvicorn's h11 protocol, answering an oversized
request head with 414 or 431 instead of a reset connection, and an access log that cuts long URLs.

h11 refuses a request whose head (request line and headers) grows past ``MAX_HEAD`` bytes while
it waits for the rest, but a head that arrives whole in one read passes however long it is; and
uvicorn answers h11's refusal with 400 and closes the socket at once, while the client is still
sending: the kernel answers the rest of its data with a reset, so the client sees "connection
reset" and no status at all.  Here every head is measured as its bytes arrive, however they are
cut into reads: one over ``MAX_HEAD`` is answered with which part was too long (414: the URL,
431: the headers), and the connection reads and drops what the client still sends (at most
``DRAIN_BYTES``, for at most ``DRAIN_SECONDS``) before closing, so that the client reads the answer.
"""
from __future__ import annotations

import json
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: the most bytes a request line plus headers may take (h11's own default)
MAX_HEAD = 16 * 1024
#: the longest request line accepted: a longer one is answered 414
MAX_REQUEST_LINE = 8 * 1024
DRAIN_BYTES = 4 * 1024 * 1024
DRAIN_SECONDS = 2.0
#: how much of a URL the access log writes
LOG_URL_CHARS = 200

log = logging.getLogger("vsb2net.serve")


def head_too_long_status(buffered: bytes) -> tuple[int, str] | None:
    """(status, message) when the request head at the start of ``buffered`` (up to its blank line,
    or all of it while that has not come) is over MAX_HEAD bytes; None when it is not."""
    end = buffered.find(b"\r\n\r\n", 0, MAX_HEAD)
    if end >= 0 or len(buffered) <= MAX_HEAD:
        return None
    line_end = buffered.find(b"\r\n", 0, MAX_REQUEST_LINE + 2)
    if line_end < 0:
        return 414, (f"the URL is too long (over {MAX_REQUEST_LINE:,} bytes); send long input in a request body "
                     "(POST /search/image) or shorten the query.")
    return 431, (f"the request headers are too large (over {MAX_HEAD:,} bytes with the request line); send fewer "
                 "or shorter headers.")


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with 414/431 for an oversized head and a lingering close after it."""

    _draining = False
    _drained = 0

    def data_received(self, data: bytes) -> None:
        if self._draining:
            self._drained += len(data)
            if self._drained > DRAIN_BYTES:
                self.transport.close()
            return
        super().data_received(data)

    def handle_events(self) -> None:
        # runs when bytes arrive and when a response completes (a next request may wait in the
        # buffer): a head is measured before h11 parses it, since h11 checks only heads that
        # arrive in pieces, and this one may be whole
        if self.conn.their_state is h11.IDLE:
            refused = head_too_long_status(self.conn.trailing_data[0])
            if refused is not None:
                return self._refuse(*refused)
        super().handle_events()

    def send_400_response(self, msg: str) -> None:
        refused = head_too_long_status(self.conn.trailing_data[0])
        if refused is None:
            return super().send_400_response(msg)
        self._refuse(*refused)

    def _refuse(self, status: int, detail: str) -> None:
        self._unset_keepalive_if_required()
        log.warning("refused a request: %s", detail)
        body = json.dumps({"detail": detail}).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        # read (and drop) what the client still sends, then close: closing now would reset the
        # connection before the client reads the answer
        self._draining = True
        self.loop.call_later(DRAIN_SECONDS, self.transport.close)


class CutLongURLs(logging.Filter):
    """Access-log lines show at most LOG_URL_CHARS of a URL, and how long it was."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            url = record.args[2]
            if len(url) > LOG_URL_CHARS:
                cut = f"{url[:LOG_URL_CHARS]}...({len(url):,} chars)"
                record.args = record.args[:2] + (cut,) + record.args[3:]
        return True


def uvicorn_config(app, **options):
    """uvicorn's Config for ``app`` with this module's protocol and head limit (``vsb2net serve``
    and the tests' servers use it alike)."""
    import uvicorn

    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, CutLongURLs) for f in access.filters):
        access.addFilter(CutLongURLs())
    return uvicorn.Config(app, http=BoundedH11Protocol, h11_max_incomplete_event_size=MAX_HEAD, **options)
