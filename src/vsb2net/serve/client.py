"""A small client of the ``vsb2net serve`` API, standard library only (http.client, keep-alive).

    from vsb2net.serve.client import Client
    api = Client("http://127.0.0.1:8000", token=None)
    status, answer = api.json("GET", "/search/class?name=zebra&k=5")
    status, answer = api.search_image(open("q.png", "rb").read(), "q.png", k=20)

Used by the tests and by benchmarks/serve_load.py.
"""
from __future__ import annotations

import http.client
import io
import json
import uuid
from urllib.parse import urlsplit


def multipart(files: dict[str, tuple[str, bytes, str]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data request: ``files`` maps a field name to
    (file name, bytes, content type); ``fields`` are plain text fields."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in (fields or {}).items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, ctype) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection to a server; reconnects after the server closed it or an error."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60):
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"{url!r} names no host; give e.g. http://127.0.0.1:8000")
        self.host, self.port = parts.hostname, parts.port or 80
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body=None, headers: dict | None = None,
                chunked: bool = False) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body) of one request."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=body, headers={**self.auth, **(headers or {})},
                               encode_chunked=chunked)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        head = {k.lower(): v for k, v in response.getheaders()}
        if head.get("connection", "").lower() == "close":
            self.close()
        return response.status, head, data

    def json(self, method: str, path: str, **kw) -> tuple[int, object]:
        status, _, data = self.request(method, path, **kw)
        return status, json.loads(data)

    def upload_request(self, data: bytes, filename: str = "query.png", k: int | None = None,
                       radius: int | None = None) -> tuple[bytes, dict]:
        """(body, headers) of POST /search/image, to send as they are (or many times)."""
        fields = {name: str(v) for name, v in (("k", k), ("radius", radius)) if v is not None}
        body, ctype = multipart({"file": (filename, data, "application/octet-stream")}, fields)
        return body, {"Content-Type": ctype}

    def search_image(self, data: bytes, filename: str = "query.png", k: int | None = None,
                     radius: int | None = None) -> tuple[int, object]:
        body, headers = self.upload_request(data, filename, k, radius)
        return self.json("POST", "/search/image", body=body, headers=headers)
