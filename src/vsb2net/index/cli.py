"""``vsb2net index build|info`` and ``vsb2net search``: the retrieval engine on the command line."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from vsb2net.errors import VsbError

from .backend import BACKENDS, DEFAULT_BACKEND, Param, backend_names, get_backend
from .build import DEFAULT_SHARD_SIZE
from .file_format import SUFFIX

GRID_MAX_HITS = 12


def _number_at_least(minimum: float, kind: type = int, strict: bool = False):
    """An argparse type: a number of ``kind`` (int or float) no smaller than ``minimum`` (larger,
    with ``strict``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value < minimum or (strict and value == minimum) or value != value:  # value != value: NaN
            raise argparse.ArgumentTypeError(f"must be {'more than' if strict else 'at least'} {minimum}, got {text}")
        return value

    return parse


def _int_at_least(minimum: int):
    """An argparse type: an integer no smaller than ``minimum``."""
    return _number_at_least(minimum)


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)


def register(subparsers, add_config_flags) -> None:
    del add_config_flags  # these commands read their configuration from the run directory
    p = subparsers.add_parser("index", help="build a Hamming-distance index of codes (faiss or Milvus)",
                              description="Build or inspect a search index of binary codes made by a trained run.")
    sub = p.add_subparsers(dest="index_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    b = sub.add_parser(
        "build", help="encode items with a run's model and index their codes",
        description="Encode the items with the run's model and write an index file (format, code length and "
                    "the model's fingerprint in its header). Items: the run's database split (--dataset with the "
                    "run's dataset; other datasets: all their images), a folder of images, or a .npy file of codes.")
    b.add_argument("run_dir", metavar="RUN_DIR", help="trained run directory (vsb2net train/run)")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME", help="a dataset: the run's own gives its database split "
                                                       "(ids = dataset indices, metadata = class name)")
    src.add_argument("--images", metavar="DIR", help="every image file under DIR (ids 0.. in path order)")
    src.add_argument("--files", metavar="LIST.txt", help="the images a text file lists, one path a line (relative "
                                                         "to the list's folder; ids 0.. in the list's order)")
    src.add_argument("--codes", metavar="FILE.npy", help="codes: packed uint8 (N, bits/8) or unpacked (N, bits)")
    b.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files (with --dataset)")
    b.add_argument("-o", "--output", metavar="INDEX", help=f"index file (default RUN_DIR/<source>.<backend>{SUFFIX})")
    names = backend_names()  # the registry; imports the backend modules, not faiss or pymilvus
    b.add_argument("--backend", choices=names, default=DEFAULT_BACKEND, metavar="BACKEND",
                   help="index backend, default %(default)s. " + " ".join(f"{n}: {BACKENDS.help(n)}." for n in names))
    add_param_flags(b.add_argument_group("backend parameters (each backend declares its own)"))
    r = b.add_argument_group("coding (run it under torchrun to spread the shards over processes and machines)")
    r.add_argument("--shard-size", type=_positive, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help="items per shard, default %(default)s. Shards are written to INDEX.shards/ as they finish; "
                        "the same command run again after a crash codes only the missing ones")
    r.add_argument("--device", default="auto", help="auto (default: cuda if there is one), cpu, cuda or cuda:N")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_build)

    i = sub.add_parser("info", help="show an index file's header", description="Print the header of an index file "
                                                                            "(code length, backend, model, count).")
    i.add_argument("index", metavar="INDEX")
    i.set_defaults(func=cmd_info)

    s = subparsers.add_parser(
        "search", help="search an index by image, class name, class vector or code",
        description="Encode the queries with the run's model and print the nearest indexed items by Hamming "
                    "distance; items at one distance are ordered by their inner product with the query's real-valued "
                    "code (the model's output before the sign; items nothing tells apart, and hex-code queries, in "
                    "a fixed shuffled order), and each distance's tie group is "
                    "counted. Class names and vectors go through the semantic branch, so "
                    "a class never seen in training retrieves its images zero-shot.")
    s.add_argument("run_dir", metavar="RUN_DIR", help="the run whose model built the index")
    s.add_argument("index", metavar="INDEX", help="index file from `vsb2net index build`")
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", nargs="+", metavar="FILE", help="query images (converted to the run's input: 28x28 "
                                                             "greyscale for the default backbone, light object on "
                                                             "dark background like the training images)")
    q.add_argument("--class-name", nargs="+", metavar="NAME", help="class names (GloVe words; one of the run's "
                                                                  "classes uses the run's own vector)")
    q.add_argument("--class-vector", metavar="FILE", help=".npy vector/matrix or .csv rows [name,]v1,v2,... of "
                                                          "class vectors (attributes or word vectors)")
    q.add_argument("--code", nargs="+", metavar="HEX", help="query codes as hex (2 digits per byte)")
    s.add_argument("-k", type=_positive, default=None, help="number of hits (default 10; with --radius: all)")
    s.add_argument("--radius", type=_non_negative, help="all items within this Hamming distance (inclusive)")
    s.add_argument("--json", action="store_true", help="print the results as JSON")
    s.add_argument("--grid", metavar="PNG", help="also save a picture of the queries and their hits")
    add_param_flags(s.add_argument_group("search parameters of the index's backend"), search_time=True)
    s.set_defaults(func=cmd_search)


# ----------------------------------------------------------------------------- backend parameters

def _declared(search_time: bool = False) -> dict[str, tuple[Param, list[str]]]:
    """Every backend's declared parameters by flag (only the search-time ones with ``search_time``),
    with the help each backend gives it."""
    out: dict[str, tuple[Param, list[str]]] = {}
    for name in backend_names():
        for p in get_backend(name).parameters:
            if search_time and not p.search_time:
                continue
            if p.option not in out:
                out[p.option] = (p, [])
            first = out[p.option][0]
            if (p.name, p.kind, p.minimum, p.choices, p.search_time) != (
                    first.name, first.kind, first.minimum, first.choices, first.search_time):
                raise VsbError(f"backends declare {p.option} differently (backend {name}: {p}; before: {first}); "
                               "a shared flag needs one name, kind, minimum, choices and search_time.")
            out[p.option][1].append(f"{name}: {p.help}")
    return out


def add_param_flags(group, search_time: bool = False) -> None:
    """A flag for each declared backend parameter (for ``search``/``serve``: the search-time ones)."""
    for option, (p, helps) in _declared(search_time).items():
        text = "; ".join(helps).replace("%", "%%")
        if p.kind is bool:
            group.add_argument(option, dest=p.dest, action="store_true", default=None, help=text)
        elif p.kind is int:
            group.add_argument(option, dest=p.dest, type=_int_at_least(p.minimum), metavar=p.metavar, help=text)
        else:
            group.add_argument(option, dest=p.dest, type=p.kind, choices=p.choices, metavar=p.metavar, help=text)


def search_params(args: argparse.Namespace) -> dict:
    """The search-time backend parameters given on the command line, by parameter name."""
    return {p.name: getattr(args, p.dest) for p, _ in _declared(search_time=True).values()
            if getattr(args, p.dest, None) is not None}


# ----------------------------------------------------------------------------- build

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "items"


def cmd_build(args: argparse.Namespace) -> int:
    from vsb2net.distributed import from_env, leave_helper_rank
    from vsb2net.run import Run
    from vsb2net.threads import use_cpu_threads

    from . import items as sources
    from .build import build

    use_cpu_threads()
    run = Run.load(args.run_dir)
    if args.dataset:
        items = sources.dataset_items(run, args.dataset, args.data_root)
        stem = _slug(args.dataset)
    elif args.images:
        items = sources.image_folder_items(run, Path(args.images))
        stem = "images-" + _slug(Path(args.images).resolve().name)
    elif args.files:
        items = sources.file_list_items(run, Path(args.files))
        stem = "files-" + _slug(Path(args.files).stem)
    else:
        items = sources.code_file_items(run, Path(args.codes))
        stem = "codes-" + _slug(Path(args.codes).stem)
    out = Path(args.output) if args.output else run.path / f"{stem}.{args.backend}{SUFFIX}"
    params = _backend_params(args, out, stem)
    rank = from_env()
    for warning in items.warnings if rank.is_main else []:
        print(f"warning: {warning}", file=sys.stderr)
    index, summary = build(run, items, out, args.backend, params, shard_size=args.shard_size, device=args.device,
                           progress=not args.no_progress)
    if index is None:
        leave_helper_rank()  # rank 0 merges and writes the index
    if summary is not None:
        print(summary.line())
    where = {"dataset": f"{items.source.get('split')} split of {items.source.get('name')}",
             "images": (f"images listed in {items.source['list']}" if "list" in items.source
                        else f"images under {items.source.get('folder')}"),
             "codes": f"codes in {items.source.get('file')}"}[items.source["kind"]]
    print(f"indexed {len(index)} codes ({run.bits} bits, {args.backend}) from the {where}")
    print(f"model {run.fingerprint}; index: {out}")
    return 0


def _backend_params(args: argparse.Namespace, out: Path, stem: str) -> dict:
    """The chosen backend's parameters: its defaults for this index file, then the flags given."""
    b = args.backend
    cls = get_backend(b)
    given = {option: getattr(args, p.dest) for option, (p, _) in _declared().items()
             if getattr(args, p.dest, None) is not None}
    own = {p.option: p for p in cls.parameters}
    extra = sorted(set(given) - set(own))
    if extra:
        raise VsbError(f"{' '.join(extra)} do not apply to backend {b}; "
                       f"{'it takes none' if not own else 'it takes ' + ' '.join(sorted(own))}.")
    return {**cls.file_defaults(out, stem), **{own[o].name: v for o, v in given.items()}}


def cmd_info(args: argparse.Namespace) -> int:
    from .file_format import read_index_file

    header, _ = read_index_file(Path(args.index))
    model = header.get("model") or {}
    print(f"{args.index}: {header['count']} codes, {header['bits']} bits, backend {header['backend']} "
          f"{json.dumps(header.get('backend_params') or {})}")
    print(f"model {model.get('fingerprint')} ({model.get('method')}, run {model.get('run')})")
    print(f"source {json.dumps((header.get('info') or {}).get('source'))}")
    return 0


# ----------------------------------------------------------------------------- search

def _queries(args: argparse.Namespace, run) -> tuple[list[dict], np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(query descriptions, packed codes, real-valued codes or None (hex codes), query images or None)."""
    from vsb2net.codes import codes_to_hex, hexes_to_codes, pack_codes
    from vsb2net.data.images import read_images
    from vsb2net.data.vector_files import read_query_vectors

    images = real = None
    if args.image:
        from .items import fit_warnings

        paths = [Path(p) for p in args.image]
        images = read_images(paths, run.in_shape)
        for warning in fit_warnings(run, paths):
            print(f"warning: {warning}", file=sys.stderr)
        real = run.image_outputs(images)
        desc = [{"kind": "image", "query": str(p)} for p in paths]
    elif args.class_name:
        real = run.class_name_outputs(args.class_name)
        desc = [{"kind": "class-name", "query": n} for n in args.class_name]
    elif args.class_vector:
        names, vectors = read_query_vectors(Path(args.class_vector))
        real = run.class_outputs(vectors)
        desc = [{"kind": "class-vector", "query": n} for n in names]
    else:
        desc = [{"kind": "code", "query": h} for h in args.code]
    codes = hexes_to_codes(args.code, run.bits) if real is None else pack_codes(real)
    for d, c in zip(desc, codes):
        d["code"] = codes_to_hex(c)
    return desc, codes, real, images


def cmd_search(args: argparse.Namespace) -> int:
    from vsb2net.run import Run
    from vsb2net.threads import use_cpu_threads

    from .hamming_index import open_index

    use_cpu_threads()
    run = Run.load(args.run_dir)
    index_path = Path(args.index)
    index = open_index(run, index_path, **search_params(args))
    try:
        desc, codes, real, images = _queries(args, run)
        # ties ordered by the queries' real-valued codes where the backend can return stored codes
        real = real if index.backend.returns_codes else None
        if args.radius is None:
            k = args.k or 10
            results = index.search(codes, k, real=real, ties=True)
        else:
            k = args.k
            results = index.range_search(codes, args.radius, k=k, real=real, ties=True)
    finally:
        index.close()
    for d, hits in zip(desc, results):
        d["hits"] = hits.rows()
        d["groups"] = hits.tie_groups()
    quality = run.class_name_quality()
    if args.json:
        print(json.dumps({"run": str(run.path), "index": str(index_path), "model": run.fingerprint,
                          "bits": run.bits, "backend": index.backend_name, "k": k, "radius": args.radius,
                          "ties_by": "score" if real is not None else "shuffle", "class_name_quality": quality,
                          "queries": desc}, indent=2))
    else:
        _print_table(desc, args.radius, k)
    seen = {n.lower() for n in run.split_info().get("seen") or []}
    zero_shot = any(d["kind"] == "class-name" and d["query"].strip().lower() not in seen for d in desc)
    if zero_shot and quality and quality["level"] in ("near_chance", "below_chance"):
        print(f"note: {quality['plain']}", file=sys.stderr)
    if args.grid:
        path = save_grid(Path(args.grid), run, index, desc, images)
        if not args.json:
            print(f"grid: {path}")
    return 0


def _meta_columns(hits: list[dict]) -> list[str]:
    cols: dict[str, None] = {}
    for h in hits:
        if isinstance(h["metadata"], dict):
            cols.update(dict.fromkeys(h["metadata"]))
    return list(cols)


def _cell(value) -> str:
    return "" if value is None else (value if isinstance(value, str) else json.dumps(value))


def _print_table(desc: list[dict], radius: int | None, k: int | None) -> None:
    for n, d in enumerate(desc, 1):
        what = f"within radius {radius}" if radius is not None else f"{k} nearest"
        if radius is not None and k is not None:
            what += f", first {k}"
        label = d["kind"].replace("-", " ")
        print(f"query {n}/{len(desc)}: {label} {d['query']!r} (code {d['code']}): {len(d['hits'])} hit(s), {what}")
        hits = d["hits"]
        if not hits:
            print("  (no hits)")
            continue
        print("  tie groups: " + ", ".join(group_label(g) for g in d.get("groups", [])))
        cols = _meta_columns(hits)
        other = any(h["metadata"] is not None and not isinstance(h["metadata"], dict) for h in hits)
        scored = any("score" in h for h in hits)
        head = ["rank", "distance"] + (["score"] if scored else []) + ["id"] + cols + (["metadata"] if other else [])
        rows = []
        for h in hits:
            m = h["metadata"]
            cells = [_cell(m.get(c)) if isinstance(m, dict) else "" for c in cols]
            if other:
                cells.append("" if m is None or isinstance(m, dict) else _cell(m))
            rows.append([str(h["rank"]), str(h["distance"])] + ([f"{h['score']:.2f}"] if scored else [])
                        + [str(h["id"])] + cells)
        numeric = 4 if scored else 3
        widths = [max(len(head[j]), *(len(r[j]) for r in rows)) for j in range(len(head))]
        for r in [head] + rows:
            padded = (c.rjust(w) if j < numeric else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
            print(("  " + "  ".join(padded)).rstrip())


def group_label(group: dict) -> str:
    """"d=0: 29 items, 10 shown" (the page writes the same words)."""
    count = f"{group['count']}{'' if group['exact'] else '+'}"
    return f"d={group['distance']}: {count} item{'s' if group['count'] != 1 else ''}, {group['shown']} shown"


# ----------------------------------------------------------------------------- grid picture

def _hit_images(run, index, ids: list[int]) -> dict[int, np.ndarray]:
    """Pictures of indexed items by id, from where the index was built; a file moved since has none
    (its cell says so instead of failing the search)."""
    from .items import ItemPictures

    pictures = ItemPictures(run, index)
    if not pictures.available:
        raise VsbError("--grid shows pictures of the hits, but this index was built from codes (--codes), which "
                       "have none; leave out --grid or index images (--dataset or --images).")
    found = {i: pictures.get(i) for i in ids}
    return {i: pic for i, pic in found.items() if pic is not None}


def save_grid(path: Path, run, index, desc: list[dict], images: np.ndarray | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vsb2net.io import atomic_path

    ids = sorted({h["id"] for d in desc for h in d["hits"][:GRID_MAX_HITS]})
    pictures = _hit_images(run, index, ids)
    cols = 1 + max([min(len(d["hits"]), GRID_MAX_HITS) for d in desc] + [1])
    height = 1.5 * len(desc) + 0.5
    fig, axes = plt.subplots(len(desc), cols, figsize=(1.15 * cols, height), squeeze=False)
    fig.subplots_adjust(hspace=0.6, top=1 - 0.55 / height)  # room for the title above the first row
    for row, d in enumerate(desc):
        qclass = d["query"].strip().lower() if d["kind"] == "class-name" else None
        ax = axes[row, 0]
        if images is not None:
            ax.imshow(images[row], cmap="gray" if images.ndim == 3 else None)
        else:
            ax.text(0.5, 0.5, d["query"] if len(d["query"]) <= 14 else d["query"][:13] + "...",
                    ha="center", va="center", fontsize=8, wrap=True)
        ax.set_title(f"query\n{d['kind']}", fontsize=7)
        for col in range(1, cols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col - 1 >= len(d["hits"][:GRID_MAX_HITS]):
                ax.axis("off")
                continue
            h = d["hits"][col - 1]
            pic = pictures.get(h["id"])
            if pic is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7)
            else:
                ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None)
            ax.set_title(f"d={h['distance']}\nid {h['id']}", fontsize=7)
            meta = h["metadata"] if isinstance(h["metadata"], dict) else {}
            if qclass is not None and "class" in meta:
                ok = str(meta["class"]).strip().lower() == qclass
                for spine in ax.spines.values():
                    spine.set_edgecolor("#1a9e1a" if ok else "#d62728")
                    spine.set_linewidth(2.5)
        axes[row, 0].set_xticks([])
        axes[row, 0].set_yticks([])
    fig.suptitle("Queries and their nearest items by Hamming distance (d); ties by the query's real-valued score"
                 + ("; green: same class as the queried name" if any(d["kind"] == "class-name" for d in desc) else ""),
                 fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
