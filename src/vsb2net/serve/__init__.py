"""``vsb2net serve``: an HTTP search API and web page over an index (docs/SERVE.md).

service.py answers queries (model work in a thread pool, index calls through the micro-batcher of
batching.py); app.py is the FastAPI application (routes, authentication, limits, errors) and
page.html its web page; cli.py adds the command.  Importing this package imports neither FastAPI
nor torch: ``vsb2net --help`` stays fast.
"""
