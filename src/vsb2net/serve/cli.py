"""``vsb2net serve RUN INDEX``: the search API and web page over HTTP (uvicorn).

Building the parser imports nothing heavy; FastAPI, uvicorn and torch are imported when the
command runs.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from vsb2net.errors import VsbError
from vsb2net.index.cli import _int_at_least, _number_at_least, add_param_flags, search_params
from vsb2net.threads import set_wait_policy

TOKEN_ENV = "VSB2NET_TOKEN"
MIN_TOKEN_CHARS = 16
INSTALL = "pip install -e '.[serve]'"


def register(subparsers, add_config_flags) -> None:
    del add_config_flags  # the configuration comes from the run directory
    s = subparsers.add_parser(
        "serve", help="serve an index over HTTP: JSON search API and a web page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load RUN's model and INDEX once and answer searches over HTTP: by uploaded image,\n"
                    "class name, free text or hex code (JSON API, schema at /openapi.json), with a web page\n"
                    "at / that shows the ranked hits as thumbnails. Concurrent queries are batched into one\n"
                    "index call.",
        epilog=f"""authentication:
  The server listens on 127.0.0.1 (this machine only) by default. Any other --host needs a token in
  the environment variable {TOKEN_ENV} (at least {MIN_TOKEN_CHARS} characters, e.g. from
  `python -c "import secrets; print(secrets.token_urlsafe())"`); the server refuses to start
  without it. With a token set, every route but /health needs 'Authorization: Bearer <token>',
  or ?token=<token> in the page's URL (the page forwards it). Use a TLS proxy in front of it for
  anything beyond a trusted network: the server speaks plain HTTP.

limits:
  Uploads over --max-upload-mb (checked on Content-Length and on the bytes received) get 413;
  pictures over --max-pixels are refused before decoding (decompression bombs); k is capped by
  --max-k. Every bad request gets a 4xx with a one-line JSON reason {{"detail": "..."}}.

example:
  vsb2net serve runs/animal-mnist_vsb2net_32bits_seed0 \\
      runs/animal-mnist_vsb2net_32bits_seed0/animal-mnist.faiss-flat.vsbidx
  # then open http://127.0.0.1:8000/ ; docs/SERVE.md has the API
""")
    s.add_argument("run_dir", metavar="RUN", help="the trained run directory whose model built the index")
    s.add_argument("index", metavar="INDEX", help="index file from `vsb2net index build RUN ...` (any backend)")
    s.add_argument("--host", default="127.0.0.1",
                   help=f"address to listen on (default %(default)s: this machine only; any other needs {TOKEN_ENV})")
    s.add_argument("--port", type=_int_at_least(0), default=8000,
                   help="TCP port (default %(default)s; 0: any free port, printed at start)")
    s.add_argument("--max-upload-mb", type=_number_at_least(0, float, strict=True), default=8.0,
                   help="largest image upload in MiB (default %(default)g)")
    s.add_argument("--max-pixels", type=_int_at_least(1), default=4096 * 4096,
                   help="largest picture, width x height, refused before decoding (default %(default)d; Pillow's "
                        "own limit is about 89 million)")
    s.add_argument("--max-k", type=_int_at_least(1), default=1000,
                   help="most hits one query may ask for (default %(default)d)")
    s.add_argument("--batch-window-ms", type=_number_at_least(0, float), default=2.0,
                   help="how long concurrent queries are gathered into one index call (default %(default)g ms)")
    s.add_argument("--max-batch", type=_int_at_least(1), default=64,
                   help="most queries per index call (default %(default)d; 1 turns batching off)")
    s.add_argument("--model-threads", type=_int_at_least(1), default=2,
                   help="uploads, class names and texts coded at once, each on one CPU thread (default %(default)d)")
    s.add_argument("--max-connections", type=_int_at_least(1), default=256,
                   help="concurrent connections before the server answers 503 (default %(default)d)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default %(default)s; info logs every request)")
    add_param_flags(s.add_argument_group("search parameters of the index's backend"), search_time=True)
    s.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_token(host: str, environ=os.environ) -> str | None:
    """The token to require: VSB2NET_TOKEN when set; refuses a non-loopback host without one."""
    token = environ.get(TOKEN_ENV)
    if token is not None and not token.strip():
        token = None
    if token is None:
        if not is_loopback(host):
            raise VsbError(f"--host {host} makes the server reachable from other machines, so it needs a token: set "
                           f"the environment variable {TOKEN_ENV} (at least {MIN_TOKEN_CHARS} characters, e.g. "
                           "python -c \"import secrets; print(secrets.token_urlsafe())\"), and clients send "
                           "'Authorization: Bearer <token>'. Or keep the default --host 127.0.0.1.")
        return None
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise VsbError(f"{TOKEN_ENV} is {len(token)} characters long; use at least {MIN_TOKEN_CHARS} random characters "
                       "(python -c \"import secrets; print(secrets.token_urlsafe())\").")
    return token


def listen_socket(host: str, port: int) -> socket.socket:
    try:
        # proto must say TCP: asyncio sets TCP_NODELAY only then (else each answer waits for a delayed ACK)
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                             proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise VsbError(f"--host {host}: not an address of this machine ({exc.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until the server accepts them
    except OSError as exc:
        sock.close()
        raise VsbError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port, or stop "
                       "what uses it.") from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def cmd_serve(args: argparse.Namespace) -> int:
    # OpenMP threads (faiss, torch) that wait at a barrier sleep instead of spinning: a server shares
    # its cores with its own other threads (and often other programs), and a spinning waiter can
    # hold up the very thread it waits for by tens of ms. Read when faiss and torch load, below
    # (`vsb2net` sets it for every command; here again for callers of cmd_serve).
    set_wait_policy()
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401  (Swagger UI's files, for /docs)
        import python_multipart  # noqa: F401  (FastAPI's form parser)
        import uvicorn
    except ImportError as exc:
        raise VsbError(f"`vsb2net serve` needs FastAPI, uvicorn, python-multipart and fastapi-offline "
                       f"({exc.name or exc} is not installed): {INSTALL}") from None
    token = server_token(args.host)
    sock = listen_socket(args.host, args.port)
    try:
        from .app import create_app
        from .http import uvicorn_config
        from .service import Limits

        limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels,
                        max_k=args.max_k)
        import torch

        # one thread per model call: concurrent requests run side by side on the --model-threads
        # pool instead of each spreading a small forward pass over every core
        torch.set_num_threads(1)
        app = create_app(args.run_dir, args.index, token=token, limits=limits,
                         batch_window_s=args.batch_window_ms / 1000, max_batch=args.max_batch,
                         model_threads=args.model_threads, **search_params(args))
        service = app.state.service
        print(f"vsb2net serve: {service.identity['method']} run {service.run.path}, {len(service.index):,} codes "
              f"({service.run.bits} bits, {service.index.backend_name}) on {_url(sock)}"
              + (f" (token required: {TOKEN_ENV})" if token else ""), flush=True)
        for warning in service.index_warnings:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        config = uvicorn_config(app, log_level=args.log_level, limit_concurrency=args.max_connections,
                                server_header=False)
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        print("vsb2net serve: stopped", file=sys.stderr)
        return 0
    finally:
        sock.close()
