"""Audit reports: JSON with every number, plain-text tables, and an HTML page with pictures.

Numbers: every float is rounded to 6 significant digits once (:func:`jsonable`); the JSON holds
those values and the text tables print them with ``{:.6g}``, so a printed number read back as a
float equals the JSON's. :func:`write_report` writes ``index.html`` (Jinja2 template
``templates/report.html``), ``report.json`` and the PNGs it references into a temporary sibling
folder that is renamed to ``DIR`` on success (:func:`slicewise.utils.atomic_path`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.utils.atomic import atomic_path, write_json
from slicewise.utils.figures import pyplot, save_figure

SIG = 6


def rnd(v: float) -> float:
    """Round to :data:`SIG` significant digits (the precision of every JSON and printed number)."""
    return float(f"{float(v):.{SIG}g}")


def fmt(v: Any) -> str:
    """Print a number as the JSON holds it (``{:.6g}`` of the rounded value); ``None`` as ``-``."""
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{rnd(v):.{SIG}g}"


def jsonable(obj: Any) -> Any:
    """Plain JSON data: floats rounded (:func:`rnd`), NaN/inf → ``None``, arrays and tensors
    (picture data such as ``"maps"``) dropped, tuples → lists."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items() if not _is_array(v)}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return rnd(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _is_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) or type(v).__module__.startswith("torch") or (
        isinstance(v, Mapping) and bool(v) and all(_is_array(x) for x in v.values()))


CHECKPOINT_STEMS = ("best", "last", "final", "model", "checkpoint")
"""Model file names that say nothing about the run: the run folder names those models instead."""


def run_name(spec: str | Path) -> str:
    """The name a model goes by in titles and legends: its run folder for a checkpoint file
    (``runs/uniform/best.pt`` → ``uniform``; ``runs/uniform/checkpoints/best.ckpt`` → ``uniform``),
    else the file's stem (``models/rgb_lite0.pt`` → ``rgb_lite0``); an encoder spec as it is."""
    p = Path(spec)
    if not p.suffix or ":" in str(spec) and not p.exists():
        return str(spec)
    stem = p.stem
    if stem.lower() in CHECKPOINT_STEMS or stem.lower().startswith(("epoch", "step")):
        parent = p.parent
        if parent.name == "checkpoints":
            parent = parent.parent
        name = parent.resolve().name if parent.name in ("", ".") else parent.name
        return name or stem
    return stem


def _ci(d: Mapping[str, Any]) -> str:
    lo, hi = d["ci"]
    return f"{fmt(d['value'])} [{fmt(lo)}, {fmt(hi)}]"


def attribution_models(result: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Named single-model attribution reports of an ``attribution`` or ``attribution_comparison`` result."""
    if result.get("kind") == "attribution_comparison":
        return dict(result["models"])
    return {"model": result}


def format_attribution(result: Mapping[str, Any]) -> str:
    """Text table: per model the slice shares, MA, centre share and s_0 − s_{k−1} with 95% CIs."""
    res = jsonable(result)
    models = attribution_models(res)
    first = next(iter(models.values()))
    lines = [f"attribution: method={first['method']} class={first['target_class']} region={first['region']} "
             f"tile={first['tile']} k={first['k']} tiles={first['n_tiles']} seed={first['seed']} (value [95% CI])"]
    for name, r in models.items():
        lines.append(f"{name}:")
        for s in r["shares"]:
            lines.append(f"  share slice {s['slice']} (offset {s['offset']:+d}): {_ci(s)}")
        lines.append(f"  mirror asymmetry MA: {_ci(r['mirror_asymmetry'])}")
        lines.append(f"  centre share s_r: {_ci(r['centre_share'])}")
        lines.append(f"  pair difference s_0 - s_k-1: {_ci(r['pair_difference'])}")
        if r.get("n_tiles_empty"):
            lines.append(f"  tiles with an empty region (dropped): {r['n_tiles_empty']}")
    return "\n".join(lines)


def format_shift(result: Mapping[str, Any]) -> str:
    """Text table: per model, Hellinger layer score for each layer (rows) and shift (columns)."""
    res = jsonable(result)
    labels = [s["label"] for s in res["shifts"]]
    lines = [f"layer domain susceptibility (mean Hellinger distance per layer): tiles={res['n_tiles']} "
             f"tile={res['tile']} bins={res['bins']} seed={res['seed']}"]
    for name, m in res["models"].items():
        width = max(len(x) for x in m["layers"] + ["layer"])
        lines.append(f"{name}:")
        lines.append("  " + "layer".ljust(width) + "".join(f"  {lab:>14}" for lab in labels))
        for layer in m["layers"]:
            lines.append("  " + layer.ljust(width) + "".join(f"  {fmt(m['scores'][lab][layer]):>14}" for lab in labels))
    return "\n".join(lines)


def plot_shares(models: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> str:
    """Grouped bars: slice share per z-offset for each model, 95% CI error bars, the 1/k line."""
    plt = pyplot()
    names = list(models)
    first = models[names[0]]
    k = len(first["shares"])
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * k * max(1, len(names)) ** 0.5, 3.2))
    for i, name in enumerate(names):
        sh = models[name]["shares"]
        vals = np.array([s["value"] for s in sh])
        err = np.abs(np.array([s["ci"] for s in sh]).T - vals)
        pos = np.arange(k) + (i - (len(names) - 1) / 2) * width
        ax.bar(pos, vals, width, yerr=err, capsize=3, label=f"{name} (MA {fmt(models[name]['mirror_asymmetry']['value'])})")
    ax.axhline(1.0 / k, color="k", lw=0.8, ls="--", label="equal share 1/k")
    ax.set_xticks(np.arange(k), [f"{s['offset']:+d}" for s in first["shares"]])
    ax.set_xlabel("slice z-offset")
    ax.set_ylabel("attribution share")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_maps(report: Mapping[str, Any], path: Path, title: str) -> str | None:
    """Per tile: the centre input slice, then |A| of each slice on one colour scale per tile."""
    maps = report.get("maps")
    if not maps or len(maps["inputs"]) == 0:
        return None
    plt = pyplot()
    x, a = np.asarray(maps["inputs"]), np.asarray(maps["attributions"])
    k = int(report["k"])
    colors = x.shape[1] // k
    r = (k - 1) // 2
    n = x.shape[0]
    fig, axes = plt.subplots(n, k + 1, figsize=(1.9 * (k + 1), 1.9 * n + 0.4), squeeze=False)
    for t in range(n):
        img = x[t].reshape(k, colors, *x.shape[2:])[r]
        axes[t, 0].imshow(img[0] if colors == 1 else np.moveaxis(img, 0, -1), cmap="gray", vmin=0, vmax=1)
        per = a[t].reshape(k, colors, *a.shape[2:]).sum(1)
        vmax = float(per.max()) or 1.0
        for c in range(k):
            im = axes[t, c + 1].imshow(per[c], cmap="magma", vmin=0, vmax=vmax)
            if t == 0:
                axes[t, c + 1].set_title(f"|A| offset {c - r:+d}", fontsize=8)
        if t == 0:
            axes[t, 0].set_title("input (centre)", fontsize=8)
        fig.colorbar(im, ax=list(axes[t, 1:]), fraction=0.03, pad=0.02)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_hellinger(result: Mapping[str, Any], path: Path) -> str:
    """One panel per shift: layer score (y) over the hooked layers in forward order (x), a line per model."""
    plt = pyplot()
    labels = [s["label"] for s in result["shifts"]]
    ncol = min(3, len(labels))
    nrow = math.ceil(len(labels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, lab in zip(axes.flat, labels):
        for name, m in result["models"].items():
            ax.plot(range(len(m["layers"])), [m["scores"][lab][layer] for layer in m["layers"]], marker="o", label=name)
        layers = next(iter(result["models"].values()))["layers"]
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"shift {lab}", fontsize=10)
        ax.set_ylabel("mean Hellinger H")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)


def weights_shares(result: Mapping[str, Any]) -> list[float] | None:
    """Per-input-channel shares of a weight audit (list of numbers or of ``{"value": ...}``), if it has them."""
    sh = result.get("shares")
    if not isinstance(sh, (list, tuple)) or not sh:
        return None
    vals = [s["value"] if isinstance(s, Mapping) else s for s in sh]
    return [float(v) for v in vals] if all(isinstance(v, (int, float)) for v in vals) else None


def plot_weights(audits: Sequence[Mapping[str, Any]], names: Sequence[str], path: Path) -> str | None:
    """Grouped bars of first-layer per-input-channel shares, one group of bars per audited network."""
    shares = [weights_shares(a) for a in audits]
    if not shares or any(s is None for s in shares):
        return None
    plt = pyplot()
    k = max(len(s) for s in shares)
    width = 0.8 / len(shares)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * k, 3.0))
    for i, (name, s) in enumerate(zip(names, shares)):
        ax.bar(np.arange(len(s)) + (i - (len(shares) - 1) / 2) * width, s, width, label=name)
    ax.axhline(1.0 / k, color="k", lw=0.8, ls="--", label="equal share 1/k")
    ax.set_xticks(np.arange(k), [f"{c - (k - 1) // 2:+d}" for c in range(k)])
    ax.set_xlabel("slice z-offset (pseudo-RGB: R, G, B)")
    ax.set_ylabel("weight share (L1)")
    ax.set_title("first-layer weight shares", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def write_report(
    directory: str | Path,
    *,
    attribution: Mapping[str, Any] | None = None,
    shift: Mapping[str, Any] | None = None,
    weights: Mapping[str, Any] | Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "slicewise audit",
    overwrite: bool = False,
) -> Path:
    """Write ``index.html``, ``report.json`` and PNGs for the given results into ``directory`` (atomically).

    ``attribution``: an :func:`attribution_report` or :func:`compare_models` result; ``shift``: a
    :func:`shift_report` result; ``weights``: one ``audit_weights`` result or ``{name: result}``.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    from slicewise.diagnostics.weights_audit import format_weights_audit

    if weights is not None and "shares" in weights:
        weights = {f"{weights.get('encoder', 'network')} ({weights.get('channel_init', '')})": weights}
    data = jsonable({"title": title, "weights": weights, "attribution": attribution, "shift": shift})
    ctx: dict[str, Any] = {"title": title, "json_name": "report.json"}
    with atomic_path(directory, overwrite=overwrite) as tmp:
        tmp.mkdir()
        if weights is not None:
            names = list(weights)
            ctx["weights"] = {
                "figure": plot_weights([weights[n] for n in names], names, tmp / "weights_shares.png"),
                "texts": [(n, format_weights_audit(weights[n])) for n in names],
            }
        if attribution is not None:
            models = attribution_models(attribution)
            jmodels = attribution_models(data["attribution"])
            first = next(iter(jmodels.values()))
            what = f"{first['method']}, class {first['target_class']}, region {first['region']}"
            ctx["attribution"] = {
                "info": first,
                "models": jmodels,
                "figure": plot_shares(jmodels, tmp / "attribution_shares.png", f"slice shares ({what}), 95% CI"),
                "maps": [(n, plot_maps(models[n], tmp / f"saliency_{i}.png", f"{n}: {what}"))
                         for i, n in enumerate(models)],
                "text": format_attribution(attribution),
            }
        if shift is not None:
            ctx["shift"] = {"data": data["shift"], "figure": plot_hellinger(data["shift"], tmp / "hellinger.png"),
                            "text": format_shift(shift)}
        env = Environment(loader=PackageLoader("slicewise.diagnostics", "templates"), autoescape=select_autoescape(["html"]))
        env.filters["num"] = fmt
        (tmp / "index.html").write_text(env.get_template("report.html").render(**ctx), encoding="utf-8")
        write_json(tmp / "report.json", data, indent=1)
    return Path(directory)
