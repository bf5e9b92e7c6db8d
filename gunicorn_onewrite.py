"""One ``sendall`` per response instead of two: gunicorn (``gunicorn.http.wsgi.Response``)
writes the status line and headers, then the body, as two socket writes; for a
fixed-length body that is written at once (every JSON answer of this service) the headers
go out together with it. Installed by gunicorn.conf.py in the master, before it forks.

Measured: see the comment in ``install``.
"""

from __future__ import annotations

from gunicorn import util
from gunicorn.http import wsgi

_write = wsgi.Response.write


def _head(resp) -> bytes:
    # What Response.send_headers writes.
    tosend = resp.default_headers()
    tosend.extend(["%s: %s\r\n" % (k, v) for k, v in resp.headers])  # noqa: UP031
    return util.to_bytestring("%s\r\n" % "".join(tosend), "latin-1")  # noqa: UP031


def write(resp, data):
    """The first write of a whole fixed-length body carries the headers with it; anything
    else (chunked, streamed, no-body, short) goes gunicorn's own way."""
    if (not resp.headers_sent and not resp.chunked and not resp._omits_body
            and type(data) is bytes and resp.response_length == len(data)):
        resp.headers_sent = True
        resp.sent += len(data)
        util.write(resp.sock, _head(resp) + data)
        return
    _write(resp, data)


def install() -> None:
    wsgi.Response.write = write
