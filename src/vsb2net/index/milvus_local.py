"""A Milvus standalone server on this machine, from the ``milvus`` PyPI package (2.3.x): for the
tests, the benchmarks and for trying the server path of ``--backend milvus`` without containers.

The package ships the server binary (with embedded etcd and local storage); it is unpacked into
``base_dir`` on the first start (about 0.5 GB) and keeps its data there, so a server started again
on the same folder finds its collections.  Every component advertises 127.0.0.1 and the client is
pointed at 127.0.0.1; note that Milvus 2.3 binds its gRPC ports on all interfaces (it has no
setting for the listen address), etcd on 127.0.0.1 only.

    with LocalMilvus(tmp / "milvus") as server:
        index = HammingIndex(64, "milvus", uri=server.uri, collection="codes")
"""
from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from vsb2net.errors import VsbError

#: components whose advertised address is set to 127.0.0.1
COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
#: seconds to wait for a server to stop by itself (it flushes and closes etcd) before it is killed
STOP_S = 5.0


class LocalMilvus:
    """Start (:meth:`start`), stop (:meth:`stop`) and restart a standalone server on 127.0.0.1."""

    def __init__(self, base_dir: str | Path):
        self.base_dir = Path(base_dir)
        self._server = None
        self.started_s: float | None = None
        #: every component's port at the first start; a restart keeps them all: index files name the
        #: client port, and the restarted components find each other where etcd says they were
        #: (a component that moved to another port made the proxy of a restart call the wrong
        #: service and stop: "unknown service milvus.proto.query.QueryCoord")
        self.ports: dict[str, int] = {}

    @property
    def uri(self) -> str:
        if self._server is None:
            raise VsbError("the local Milvus server is not running; start() it first.")
        return f"http://127.0.0.1:{self._server.listen_port}"

    @property
    def pid(self) -> int | None:
        proc = self._server.server_proc if self._server is not None else None
        return None if proc is None else proc.pid

    def start(self, timeout_s: float = 240.0) -> LocalMilvus:
        try:
            from milvus import MilvusServer, MilvusServerConfig
        except ImportError:
            raise VsbError("a local Milvus server needs the milvus package: pip install milvus==2.3.5") from None
        class Config(MilvusServerConfig):
            def try_bind_port(self, port):
                """The package's check that a port is free, with SO_REUSEADDR as the server's own
                listeners (Go) have: a port kept for a restart may still hold connections of the
                last run in TIME_WAIT for a minute, which the server can listen beside."""
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                    sock.listen()
                    return sock
                except OSError:
                    sock.close()
                    return None

        server = MilvusServer(Config(), wait_for_started=False)
        server.set_base_dir(str(self.base_dir))
        server.config.update(**self.ports)
        for component in COMPONENTS:
            server.config.set(f"{component}.ip", "127.0.0.1")
        t0 = time.perf_counter()
        for _ in range(30):
            try:
                server.start()
                break
            except RuntimeError as exc:  # a kept port is still in use (the last run still stopping)
                if "bind failed" not in str(exc):
                    raise VsbError(f"the local Milvus server did not start ({exc}).") from None
                time.sleep(1.0)
        else:
            raise VsbError(f"the local Milvus server cannot listen on its ports {self.ports} again (in use).")
        self._server = server
        self._wait(server, timeout_s)
        self.started_s = time.perf_counter() - t0
        self.ports = {key: int(server.config.get(key)) for key in server.config_keys if key.endswith("_port")}
        return self

    def _wait(self, server, timeout_s: float) -> None:
        """Until the server's health check answers OK; a server process that ends first is an error
        (the package's own wait goes on polling a dead server until its timeout)."""
        import urllib.error
        import urllib.request

        url = f"http://127.0.0.1:{server.webservice_port}/healthz"
        deadline = time.monotonic() + timeout_s
        log = self.base_dir / "logs" / "milvus-stderr.log"
        while time.monotonic() < deadline:
            code = server.server_proc.poll()
            if code is not None:
                self.stop()
                raise VsbError(f"the local Milvus server stopped while starting (exit code {code}); see {log}.")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if b"OK" in resp.read():
                        time.sleep(1.0)  # as the package's own wait does: the proxy may still be settling
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise VsbError(f"the local Milvus server did not answer its health check within {timeout_s:.0f} s; see {log}.")

    def stop(self) -> None:
        """Stop the server, letting it shut down cleanly (SIGTERM, then SIGKILL after STOP_S)."""
        server, self._server = self._server, None
        if server is None:
            return
        proc = server.server_proc
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            server.server_proc = None
        with contextlib.suppress(Exception):
            server.stop()  # closes its log files

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> LocalMilvus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
