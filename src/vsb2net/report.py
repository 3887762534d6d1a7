"""The run report: ``report.md`` with the metric table, two curves and a picture of retrievals."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import run as runfiles  # noqa: E402
from .codes import hamming_distances  # noqa: E402
from .evaluation.record import ROWS, Metrics, RowName, map_at_k_keys, protocols  # noqa: E402
from .evaluation.row_metrics import ROW_METRICS  # noqa: E402
from .models import METHODS  # noqa: E402

#: the rows of the tables, in their order
ROW_LABELS: dict[RowName, str] = {"unseen": "unseen classes", "seen": "seen classes"}
COLUMNS = [("map", "mAP@all"), ("map_optimistic", "(optimistic)"), ("map_pessimistic", "(pessimistic)")]


def _columns(metrics: Metrics) -> list[tuple[str, str]]:
    cols = list(COLUMNS)
    cols += [(k, k.replace("map@", "mAP@")) for k in map_at_k_keys(metrics["unseen"])]
    cols += [("precision_radius2", "P@r<=2")]
    cols += [(name, ROW_METRICS.get(name).label) for name in ROW_METRICS.names()]
    if "map_asym" in metrics["unseen"]:  # runs evaluated before it lack it
        cols += [("map_asym", "mAP asymmetric")]
    if "map_asym_in_ties" in metrics["unseen"]:
        cols += [("map_asym_in_ties", "mAP ties by score")]
    return cols


def _fmt(value, chance=None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if chance is None else f"{value:.4f} ({chance:.4f})"


def transfer_table(metrics: Metrics) -> str:
    """What carries over to the row's classes: class-name queries, zero-shot accuracy (each with its
    chance level), retrieval among the row's classes only, the mean-code oracle and code collapse."""
    lines = ["| queries | class-name mAP (chance) | ZS acc (chance) | mAP, database of these classes only "
             "| oracle mean-code mAP | distinct codes / images | nearest tie group |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for part, label in ROW_LABELS.items():
        m = metrics[part]
        own = m.get("map_unseen_db", m.get("map_seen_db"))
        lines.append(f"| {label} | {_fmt(m.get('class_query_map'), m.get('class_query_chance'))} "
                     f"| {_fmt(m.get('zero_shot_accuracy'), m.get('zero_shot_chance'))} | {_fmt(own)} "
                     f"| {_fmt(m.get('oracle_class_map'))} "
                     f"| {m.get('distinct_codes')} / {m.get('n_database_of_classes')} "
                     f"| {m.get('nearest_tie_group', 0):.1f} |")
    return "\n".join(lines)


def protocol_table(metrics: Metrics) -> str:
    """mAP@all (tie-aware) under the four protocols of the deep hashing literature."""
    values = protocols(metrics)
    return "\n".join(["| " + " | ".join(values) + " |", "|" + "---:|" * len(values),
                      "| " + " | ".join(_fmt(v) for v in values.values()) + " |"])


def class_code_table(metrics: Metrics) -> str | None:
    """Where the class codes land (``class_code_distances``), in bits; None for a method without them."""
    rows = [(label, metrics[part].get("class_code_distances")) for part, label in ROW_LABELS.items() if part in metrics]
    if not any(d for _, d in rows):
        return None
    lines = ["| class codes of | to own images (mean) | to own mean-code oracle | to nearest other class code "
             "| nearer another class's code than own oracle |", "|---|---:|---:|---:|---:|"]
    for label, d in rows:
        if d:
            other = "n/a" if d["to_nearest_other"] is None else f"{d['to_nearest_other']:.1f}"
            share = "n/a" if d["nearer_other_share"] is None else f"{d['nearer_other_share']:.0%}"
            lines.append(f"| {label} | {d['to_own_images']:.1f} | {d['to_oracle']:.1f} | {other} | {share} |")
    return "\n".join(lines)


def metric_table(metrics: Metrics) -> str:
    """Markdown table, one row per query set (unseen classes: the zero-shot number; seen classes)."""
    cols = _columns(metrics)
    lines = ["| queries | n | " + " | ".join(label for _, label in cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    for part, label in ROW_LABELS.items():
        m: Mapping[str, Any] = metrics[part]  # read by column name: map@K is not a declared key
        lines.append(f"| {label} | {m['n_queries']} | "
                     + " | ".join("n/a" if m.get(k) is None else f"{m[k]:.4f}" for k, _ in cols) + " |")
    return "\n".join(lines)


def print_tables(metrics: Metrics) -> None:
    """The metric and transfer tables, as ``run`` and ``evaluate`` print them."""
    print()
    print(metric_table(metrics))
    print()
    print("The four protocols (queries@database), mAP@all:")
    print(protocol_table(metrics))
    print()
    print(transfer_table(metrics))
    codes = class_code_table(metrics)
    if codes:
        print()
        print(codes)


def _save_fig(fig, out: Path, name: str) -> None:
    runfiles.write_figure(out, name, fig)
    plt.close(fig)


def plot_curves(out: Path, metrics: Metrics, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for part in ROWS:
        pr = metrics[part]["pr_curve"]
        ax.plot(pr["recall"], pr["precision"], marker=".", label=f"{part}-class queries")
    ax.set(xlabel="recall", ylabel="precision", title=f"PR over Hamming radius: {title}",
           xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend()
    ax.grid(alpha=0.3)
    _save_fig(fig, out, runfiles.PR_CURVE)

    fig, ax = plt.subplots(figsize=(5, 4))
    for part in ROWS:
        pk = metrics[part]["precision_at_k"]
        ax.plot(pk["k"], pk["precision"], marker=".", label=f"{part}-class queries")
    ax.set(xscale="log", xlabel="K (top K by Hamming distance)", ylabel="precision@K (tie-aware)",
           title=f"Precision@K: {title}", ylim=(0, 1.02))
    ax.legend()
    ax.grid(alpha=0.3)
    _save_fig(fig, out, runfiles.PRECISION_AT_K)


def plot_retrievals(out: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str],
                    q_index: np.ndarray, q_codes: np.ndarray, db_index: np.ndarray, db_codes: np.ndarray,
                    n_examples: int, top: int = 10) -> None:
    """Rows of (query, its top-``top`` database images); green frame = same class, red = other.

    Queries are spread evenly over the unseen-class query set.  Database items tied at the same
    Hamming distance are shown in a seeded random order: the order the tie-aware metrics average
    over (database order would group ties by class and flatter or punish arbitrarily).
    """
    n = min(n_examples, len(q_index))
    if n == 0:
        return
    pick = np.linspace(0, len(q_index) - 1, n).round().astype(int)
    dist = hamming_distances(q_codes[pick], db_codes)
    shuffle = np.random.default_rng(0).permutation(len(db_index))
    fig, axes = plt.subplots(n, top + 1, figsize=(1.1 * (top + 1), 1.45 * n), squeeze=False)
    fig.subplots_adjust(hspace=0.55)
    cmap = "gray" if images.ndim == 3 else None
    for row, qi in enumerate(pick):
        order = shuffle[np.argsort(dist[row][shuffle], kind="stable")[:top]]
        qlab = labels[q_index[qi]]
        if labels.ndim == 2:  # multi-label: relevant = sharing a label
            qname = "+".join(class_names[c] for c in np.flatnonzero(qlab))
            cells: list[tuple[int, bool | None, str]] = [(q_index[qi], None, f"query\n{qname}")]
            cells += [(db_index[j], bool((labels[db_index[j]] & qlab).any()), f"d={dist[row, j]}") for j in order]
        else:
            cells = [(q_index[qi], None, f"query\n{class_names[qlab]}")]
            cells += [(db_index[j], labels[db_index[j]] == qlab, f"d={dist[row, j]}") for j in order]
        for col, (img_i, ok, text) in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(images[img_i], cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(text, fontsize=7)
            colour = "black" if ok is None else ("#1a9e1a" if ok else "#d62728")
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2.5 if ok is not None else 1)
    fig.suptitle("Unseen-class queries and their top-10 database images "
                 "(green: same class, red: other; d = Hamming distance, ties in random order)", fontsize=9)
    _save_fig(fig, out, runfiles.RETRIEVALS)


def _protocol_lines(cfg, meta: dict, prep, training: dict) -> list[str]:
    """The report's protocol: data, split, class vectors, seeds, and how the epochs were chosen."""
    ds, sp = prep.dataset, prep.split
    sizes = meta["split"]["sizes"]
    val = training.get("validation")
    span = METHODS.get(cfg.model.method).relation_settings(cfg.model.params)[0]
    lines = [
        f"- dataset: `{meta['dataset']}` ({ds.source})",
        f"- seen classes ({len(sp.seen)}): {', '.join(meta['split']['seen'])}",
        f"- unseen classes ({len(sp.unseen)}): {', '.join(meta['split']['unseen'])}",
        f"- training images (seen classes only): {sizes['train']}; database: {sizes['database']} "
        f"(seen and unseen classes); queries: {sizes['query_unseen']} unseen-class, {sizes['query_seen']} seen-class "
        "(held out: never trained on, not in the database)",
        f"- class vectors: {cfg.data.class_vectors}"
        f"{'' if prep.vectors_source == cfg.data.class_vectors else f' ({prep.vectors_source})'}; "
        f"relation/discrepancy terms span: {span} classes",
        f"- split seed {cfg.data.split_seed}, query seed {cfg.data.query_seed}, training seed {cfg.train.seed}",
    ]
    if val and val.get("best_map") is not None:
        lines.append(f"- epochs chosen on the validation protocol (pseudo-unseen seen classes "
                     f"{', '.join(val['split']['unseen'])}): {training['final']['epochs']} "
                     f"(best pseudo-unseen mAP {val['best_map']:.4f}); no unseen-class image was used")
    if training:
        lines.append(f"- training time {training.get('seconds_total', 0):.0f} s on {training.get('device')}")
    return lines


#: (label, metrics key, chance key) of the context table, unseen-class row
CONTEXT_ROWS = [("image mAP@all", "map", "map_chance"), ("class-name mAP", "class_query_map", "class_query_chance"),
                ("zero-shot accuracy", "zero_shot_accuracy", "zero_shot_chance")]


def context_lines(cfg, metrics: Metrics) -> list[str]:
    """This split's unseen-class figures beside their chance levels and, where the benchmark has
    this dataset, method and code length (on the default backbone), beside its mean over splits."""
    from .comparison.reference import lookup

    meta, m = metrics["meta"], metrics["unseen"]
    found = lookup(meta["dataset"], meta["method"], int(meta["bits"]))
    if found and str(cfg.model.backbone).strip().lower() not in ("auto", "cnn28"):
        found = None  # the benchmark's main tables train cnn28 (auto, on their 28x28 images)
    settings, figures = found or ({}, {})
    n = max((f["splits"] for f in figures.values()), default=0)
    head = "| unseen classes | this split | chance |" + (f" benchmark: mean ± std over {n} splits |" if found else "")
    lines = [head, "|---|---:|---:|" + ("---:|" if found else "")]
    for label, key, chance in CONTEXT_ROWS:
        value = m.get(key)
        if value is None:
            continue
        row = f"| {label} | {value:.4f} | {_fmt(m.get(chance))} |"
        if found:
            ref = figures.get(key)
            row += f" {ref['mean']:.4f} ± {ref['std']:.4f} |" if ref else " - |"
        lines.append(row)
    text = ["", "This split against chance" + (" and the benchmark" if found else "") + " (unseen classes: "
            + ", ".join((meta.get("split") or {}).get("unseen") or []) + "):", "", *lines, ""]
    if found:
        per_class = settings.get("max_per_class")
        text.append(f"One split's figures swing with which classes are unseen; compare methods by the mean over "
                    f"splits ({settings.get('document')}: the same dataset, method and code length, tuned settings "
                    f"{settings.get('tuned')}, {'all' if per_class is None else f'{per_class:,}'} images per class"
                    + ("" if per_class == cfg.data.max_per_class else
                       f"; this run used {'all' if cfg.data.max_per_class is None else cfg.data.max_per_class}")
                    + ").")
    return text


def write_report(out: Path, cfg, metrics: Metrics, prep, packed: dict) -> Path:
    meta = metrics["meta"]
    title = f"{meta['method']}, {meta['bits']} bits, {meta['dataset']}"
    plot_curves(out, metrics, title)
    ds, sp = prep.dataset, prep.split
    if ds.kind == "image":
        plot_retrievals(out, ds.x, ds.labels, ds.class_names, sp.query_unseen, packed["query_unseen"],
                        sp.database, packed["database"], cfg.eval.n_examples)
    training = runfiles.read_json(out / runfiles.TRAINING, {})
    lines = [
        f"# vsb2net run: {title}",
        "",
        "## Retrieval quality",
        "",
        metric_table(metrics),
        "",
        f"Tie rule: {metrics['unseen']['tie_rule']} Chance (every item tied): "
        f"{metrics['unseen']['map_chance']:.4f} unseen, {metrics['seen']['map_chance']:.4f} seen.",
        *context_lines(cfg, metrics),
        "",
        "The four protocols of the deep hashing literature (queries@database: seen@seen ranks the seen-class "
        "database only, unseen@all the whole database, and so on), mAP@all:",
        "",
        protocol_table(metrics),
        "",
        "## Zero-shot transfer",
        "",
        transfer_table(metrics),
        "",
        "- class-name mAP: each class of the row queries the whole database with its class code "
        "sign(hash_classes(class vector)) (VSB2-Net: as `model.class_codes` says), one query per class; "
        "relevant = its images; tie-aware mAP@all "
        "(n/a for methods without a semantic branch). Chance: the mAP of a ranking that knows nothing.",
        "- ZS acc: zero-shot classification, nearest class code among the unseen classes (unseen row) or "
        "among all classes (seen row); chance 1 / candidates.",
        "- oracle mean-code mAP: each class's mean image code (sign of the mean of its database images' codes) "
        "as the query: the best any class-level query could do with these image codes.",
        "- distinct codes among the row classes' database images, and the mean number of database items tied "
        "at a query's nearest Hamming distance (large = collapsed codes, ranking inside the tie is random).",
        f"- semantic-visual alignment of the class vectors ({metrics.get('semantics', {}).get('source', '?')}): "
        f"{_fmt(metrics.get('semantics', {}).get('alignment'))} (Spearman, over pairs of training classes, between "
        "class-vector cosine and the cosine of the classes' mean standardised inputs).",
    ]
    codes = class_code_table(metrics)
    if codes:
        lines += ["", "Where the class codes land, in bits (Hamming distance; mean over the row's classes):", "",
                  codes, "",
                  "- A class code nearer another class's code than its own images' mean code (last column) "
                  "tends to rank that other class's images before its own: the class-name query misses because "
                  "of where the code is, not because the images of the class are scattered."]
    lines += ["", "## Protocol", "", *_protocol_lines(cfg, meta, prep, training)]
    lines += [
        "",
        "## Curves",
        "",
        f"![precision-recall]({runfiles.PR_CURVE}) ![precision@K]({runfiles.PRECISION_AT_K})",
        "",
    ]
    if (out / runfiles.RETRIEVALS).exists():
        lines += ["## Retrievals", "", f"![retrievals]({runfiles.RETRIEVALS})", ""]
    lines += ["Files: `config.yaml` (the full configuration), `metrics.json`, `split.json`, `training.json`, "
              "`checkpoint.pt`, `codes.npz` (packed codes).", ""]
    return runfiles.write_report_text(out, "\n".join(lines))
