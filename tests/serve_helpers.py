"""Helpers of the `vsb2net serve` tests: a real uvicorn server in a thread, queried with
vsb2net.serve.client (http.client: starlette's TestClient needs httpx, which the project does not
install), and test pictures."""
from __future__ import annotations

import io
import json
import socket
import threading
import time
import zlib

from vsb2net.serve.client import Client, multipart
from vsb2net.serve.http import uvicorn_config


class ServerThread:
    """``app`` served by uvicorn on a free loopback port, in a daemon thread; ``stop()`` shuts it down
    (lifespan included)."""

    def __init__(self, app, timeout: float = 60):
        import uvicorn

        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every answer waits ~40 ms for a delayed ACK (headers and body are two writes)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn_config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, chunked: bool = False):
        """(status, headers, body bytes) of one request on a fresh connection."""
        client = Client(self.url)
        try:
            return client.request(method, path, body=body, headers=headers, chunked=chunked)
        finally:
            client.close()

    def get(self, path: str, headers: dict | None = None):
        return self.request("GET", path, headers=headers)

    def json(self, method: str, path: str, **kw):
        status, headers, body = self.request(method, path, **kw)
        return status, json.loads(body)

    def upload(self, data: bytes, filename: str = "q.png", fields: dict | None = None, headers: dict | None = None,
               chunked: bool = False):
        body, ctype = multipart({"file": (filename, data, "application/octet-stream")}, fields or {})
        hdrs = {"Content-Type": ctype, **(headers or {})}
        if chunked:
            body = iter([body[i:i + 16384] for i in range(0, len(body), 16384)])
        return self.request("POST", "/search/image", body=body, headers=hdrs, chunked=chunked)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def png_bytes(array) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header declares width x height pixels (a decompression bomb's
    header: nothing of that size is ever stored)."""
    import numpy as np

    data = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17:ihdr + 21] = crc.to_bytes(4, "big")
    return bytes(data)
