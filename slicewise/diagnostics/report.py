"""Audit reports: JSON with every number, plain-text tables, and an HTML page with pictures.

Numbers: every float is rounded to 6 significant digits once (:func:`jsonable`); the JSON and the
CSV files hold those values; text tables, the page and figure legends print them at 4 significant
digits (:func:`slicewise.utils.table.num`, the one number format of every table and legend).
:func:`write_report` writes ``index.html`` (Jinja2 template ``templates/report.html`` with the
shared stylesheet ``templates/style.css``), ``report.json``, every figure as PNG and SVG, and every
table as CSV into a temporary sibling folder that is renamed to ``DIR`` on success
(:func:`slicewise.data.io.outputs.atomic_path`).

Figures: slice shares with their bootstrap CIs; attribution maps with one color scale per row (a
tile: the same vmin/vmax for every slice of every model in that row, so pretrained and fine-tuned
compare; the scale is printed on the row's color bar and in ``attribution_map_scales.csv``) and, for
several models, the same maps with each model on its own scale (``attribution_maps_per_model.png``: a
pretrained network's |A| can be 100× smaller than a fine-tuned one's and is black on the shared scale); the
Hellinger score per layer with its bootstrap CI over tiles, on a y-range fitted to the data. The page header
and ``report.json`` record the computing environment (:mod:`slicewise.utils.environment`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.config import FIRST_LAYER_STRATEGIES
from slicewise.data.io.outputs import atomic_path
from slicewise.data.shifts import describe_shift
from slicewise.diagnostics.weights_audit import format_weights_audit
from slicewise.utils.atomic import write_json
from slicewise.utils.environment import environment_info, environment_text
from slicewise.utils.figures import pyplot, save_figure
from slicewise.utils.table import num, text_table, write_csv

SIG = 6


def rnd(v: float) -> float:
    """Round to :data:`SIG` significant digits (the precision of every JSON and printed number)."""
    return float(f"{float(v):.{SIG}g}")


def fmt(v: Any) -> str:
    """A number as tables, pages and legends show it: :func:`slicewise.utils.table.num` (4 significant digits)."""
    return num(v)


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
    return (
        isinstance(v, np.ndarray)
        or type(v).__module__.startswith("torch")
        or (isinstance(v, Mapping) and bool(v) and all(_is_array(x) for x in v.values()))
    )


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


def class_label(report: Mapping[str, Any]) -> str:
    """``1 (membrane)`` for an attribution report whose model config names its classes, else ``1``."""
    cls = report.get("target_class")
    names = (report.get("model") or {}).get("class_names") if isinstance(report.get("model"), Mapping) else None
    if isinstance(cls, int) and names and 0 <= cls < len(names):
        return f"{cls} ({names[cls]})"
    return str(cls)


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
    lines = [
        f"attribution: method={first['method']} class={class_label(first)} region={first['region']} "
        f"tile={first['tile']} k={first['k']} tiles={first['n_tiles']} seed={first['seed']} (value [95% CI])"
    ]
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
    lines = [
        f"layer domain susceptibility (mean Hellinger distance per layer, bias-corrected: raw − null baseline of "
        f"two halves of the unshifted data; [95% bootstrap CI over tiles]): "
        f"tiles={res['n_tiles']} tile={res['tile']} bins={res['bins']} seed={res['seed']}"
    ]
    lines += [f"  shift {d}" for d in shift_definitions(res)]
    for name, m in res["models"].items():
        lines.append(f"{name}:")
        rows = [["layer", *labels]]
        for layer in m["layers"]:
            cells = [layer]
            for lab in labels:
                ci = (m.get("ci") or {}).get(lab, {}).get(layer)
                cells.append(fmt(m["scores"][lab][layer]) + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""))
            rows.append(cells)
        lines += ["  " + line for line in text_table(rows)]
    return "\n".join(lines)


def shift_definitions(result: Mapping[str, Any]) -> list[str]:
    """One sentence per shift of a :func:`shift_report` result (``contrast=0.5: intensities scaled by 0.5 about
    the mean of each slice of the tile ...``; :func:`slicewise.data.shifts.describe_shift`)."""
    return [describe_shift(s["name"], s["strength"]) for s in result["shifts"]]


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
        ax.bar(
            pos, vals, width, yerr=err, capsize=3, label=f"{name} (MA {num(models[name]['mirror_asymmetry']['value'])})"
        )
    ax.axhline(1.0 / k, color="k", lw=0.8, ls="--", label="equal share 1/k")
    ax.set_xticks(np.arange(k), [f"{s['offset']:+d}" for s in first["shares"]])
    ax.set_xlabel("slice z-offset")
    ax.set_ylabel("attribution share")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def _maps_row(fig: Any, row: Any, maps: Mapping[str, np.ndarray], per_model: bool, first_row: bool) -> Any:
    """Draw one row of :func:`maps_figure` after its input image: ``maps`` (model → |A| per slice, (k, H, W)) on
    one color scale, or one per model; returns the row's scale ((0, vmax), or {model: (0, vmax)})."""
    names = list(maps)
    k = next(iter(maps.values())).shape[0]
    r = (k - 1) // 2
    shared = max(float(a.max()) for a in maps.values()) or 1.0
    vmax = {name: (float(maps[name].max()) or 1.0) if per_model else shared for name in names}
    for j, name in enumerate(names):
        im = None
        for c in range(k):
            ax = row[1 + j * k + c]
            im = ax.imshow(maps[name][c], cmap="magma", vmin=0.0, vmax=vmax[name])
            if first_row:
                ax.set_title(f"{name}\n|A| offset {c - r:+d}", fontsize=7)
        if per_model or j == len(names) - 1:
            cols = row[1 + j * k : 1 + (j + 1) * k] if per_model else row[1:]
            bar = fig.colorbar(im, ax=list(cols), fraction=0.02, pad=0.01)
            bar.set_ticks([0.0, vmax[name]], labels=["0", num(vmax[name])])
            bar.set_label(f"|A|, {name} scale" if per_model else "|A|, row scale", fontsize=7)
    return {name: (0.0, v) for name, v in vmax.items()} if per_model else (0.0, shared)


def maps_figure(
    models: Mapping[str, Mapping[str, Any]], title: str, per_model: bool = False
) -> tuple[Any, list[Any]] | None:
    """(figure, scales per row) of the attribution maps of every model side by side.

    A row is one tile: its centre input slice, then |A| of each input slice for each model in turn. Shared
    (default): all on one color scale per row (vmin 0, vmax the largest |A| of the row over every model and
    slice), printed on the row's color bar; ``scales[t]`` is ``(0, vmax)``. ``per_model``: each model's maps
    on its own scale (0 to that model's largest |A| in the row; a color bar per model), so a model whose
    attributions are orders of magnitude smaller is not drawn black; ``scales[t]`` is ``{model: (0, vmax)}``.
    None when no model kept maps."""
    with_maps = {n: r for n, r in models.items() if r.get("maps") and len(r["maps"]["inputs"])}
    if not with_maps:
        return None
    plt = pyplot()
    names = list(with_maps)
    first = with_maps[names[0]]
    k = int(first["k"])
    r = (k - 1) // 2
    x = np.asarray(first["maps"]["inputs"])
    colors = x.shape[1] // k
    n = min(len(np.asarray(m["maps"]["attributions"])) for m in with_maps.values())
    per = {
        name: [np.asarray(m["maps"]["attributions"])[t].reshape(k, colors, *x.shape[2:]).sum(1) for t in range(n)]
        for name, m in with_maps.items()
    }
    ncols = 1 + k * len(names)
    fig, axes = plt.subplots(n, ncols, figsize=(1.7 * ncols + 0.8, 1.7 * n + 0.6), squeeze=False)
    scales: list[Any] = []
    for t in range(n):
        img = x[t].reshape(k, colors, *x.shape[2:])[r]
        axes[t, 0].imshow(img[0] if colors == 1 else np.moveaxis(img, 0, -1), cmap="gray", vmin=0, vmax=1)
        scales.append(_maps_row(fig, axes[t], {name: per[name][t] for name in names}, per_model, first_row=t == 0))
        if t == 0:
            axes[t, 0].set_title("input (centre)", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.suptitle(title, fontsize=10)
    return fig, scales


def plot_maps(
    models: Mapping[str, Mapping[str, Any]], path: Path, title: str, per_model: bool = False
) -> tuple[str | None, list[Any]]:
    """Write :func:`maps_figure` (PNG + SVG); (file name or None, its scales per row)."""
    made = maps_figure(models, title, per_model=per_model)
    if made is None:
        return None, []
    fig, scales = made
    return save_figure(fig, path), scales


def plot_hellinger(result: Mapping[str, Any], path: Path) -> str:
    """One panel per shift: layer score (y) over the hooked layers in forward order (x), a line per model
    with its bootstrap CI band; one y-range for all panels, fitted to the scores and CIs (within [0, 1])."""
    plt = pyplot()
    labels = [s["label"] for s in result["shifts"]]
    ncol = min(3, len(labels))
    nrow = math.ceil(len(labels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    lo, hi = hellinger_ylim(result)
    for ax, lab in zip(axes.flat, labels):
        for name, m in result["models"].items():
            xs = np.arange(len(m["layers"]))
            ys = [m["scores"][lab][layer] for layer in m["layers"]]
            line = ax.plot(xs, ys, marker="o", label=name)[0]
            ci = (m.get("ci") or {}).get(lab)
            if ci:
                ax.fill_between(
                    xs,
                    [ci[layer][0] for layer in m["layers"]],
                    [ci[layer][1] for layer in m["layers"]],
                    color=line.get_color(),
                    alpha=0.2,
                    lw=0,
                )
        layers = next(iter(result["models"].values()))["layers"]
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(lo, hi)
        ax.set_title(f"shift {lab}", fontsize=10)
        ax.set_ylabel("mean Hellinger distance H")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(labels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)


def hellinger_ylim(result: Mapping[str, Any]) -> tuple[float, float]:
    """The shift plot's y-range: the scores and CI bounds with 10% margin, clipped to [0, 1] (0.02 at least wide)."""
    vals = []
    for m in result["models"].values():
        for lab, sc in m["scores"].items():
            vals += [v for v in sc.values() if v is not None]
            for ci in ((m.get("ci") or {}).get(lab) or {}).values():
                vals += [v for v in ci if v is not None]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    pad = max(0.1 * (hi - lo), 0.01)
    return max(-1.0, lo - pad), min(1.0, hi + pad)  # bias-corrected scores may lie slightly below 0


def weights_shares(result: Mapping[str, Any]) -> list[float] | None:
    """Per-input-channel shares of a weight audit (list of numbers or of ``{"value": ...}``), if it has them."""
    sh = result.get("shares")
    if not isinstance(sh, (list, tuple)) or not sh:
        return None
    vals = [s["value"] if isinstance(s, Mapping) else s for s in sh]
    return [float(v) for v in vals] if all(isinstance(v, (int, float)) for v in vals) else None


def pseudo_rgb(audit: Mapping[str, Any]) -> bool:
    """Whether a weight audit is of the ``rgb`` strategy with k = 3 gray slices, the one case whose input channels
    are the pretrained R, G, B (every other strategy or k is labelled by slice offset only)."""
    return (
        getattr(FIRST_LAYER_STRATEGIES.get(str(audit.get("channel_init"))), "needs_three", False)
        and len(weights_shares(audit) or ()) == 3
        and len(audit.get("channels") or ()) in (0, 3)
    )


def plot_weights(audits: Sequence[Mapping[str, Any]], names: Sequence[str], path: Path) -> str | None:
    """Grouped bars of first-layer per-input-channel shares, one group of bars per audited network."""
    shares = [weights_shares(a) for a in audits]
    if not shares or any(s is None for s in shares):
        return None
    plt = pyplot()
    k = max(len(s) for s in shares)
    width = 0.8 / len(shares)
    rgb = [pseudo_rgb(a) for a in audits]
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * k, 3.0))
    for i, (name, s) in enumerate(zip(names, shares)):
        label = f"{name} (R, G, B = offsets -1, +0, +1)" if rgb[i] and not all(rgb) else name
        ax.bar(np.arange(len(s)) + (i - (len(shares) - 1) / 2) * width, s, width, label=label)
    ax.axhline(1.0 / k, color="k", lw=0.8, ls="--", label="equal share 1/k")
    ticks = [f"{c - (k - 1) // 2:+d}" for c in range(k)]
    ax.set_xticks(np.arange(k), [f"{t} ({c})" for t, c in zip(ticks, "RGB")] if all(rgb) else ticks)
    ax.set_xlabel("slice z-offset (pseudo-RGB channel)" if all(rgb) else "slice z-offset")
    ax.set_ylabel("weight share (L1)")
    ax.set_title("first-layer weight shares", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def _weights_rows(weights: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, audit in weights.items():
        shares = weights_shares(audit) or []
        k = len(shares)
        rows += [{"network": name, "offset": c - (k - 1) // 2, "share": v} for c, v in enumerate(shares)]
    return rows


def _attribution_rows(models: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    shares, summary = [], []
    for name, r in models.items():
        shares += [
            {"model": name, "offset": s["offset"], "share": s["value"], "ci_low": s["ci"][0], "ci_high": s["ci"][1]}
            for s in r["shares"]
        ]
        summary += [
            {
                "model": name,
                "measure": key,
                "value": r[key]["value"],
                "ci_low": r[key]["ci"][0],
                "ci_high": r[key]["ci"][1],
                "n_tiles": r["n_tiles"],
            }
            for key in ("mirror_asymmetry", "centre_share", "pair_difference")
        ]
    return shares, summary


def _hellinger_rows(shift: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, m in shift["models"].items():
        for lab, scores in m["scores"].items():
            for layer in m["layers"]:
                ci = (m.get("ci") or {}).get(lab, {}).get(layer) or [None, None]
                rows.append(
                    {
                        "model": name,
                        "shift": lab,
                        "layer": layer,
                        "channels": m["channels"][layer],
                        "values_per_channel": m["values_per_channel"][layer],
                        "hellinger_raw": (m.get("raw") or {}).get(lab, {}).get(layer),
                        "hellinger_null": (m.get("null") or {}).get(layer),
                        "hellinger": scores[layer],
                        "ci_low": ci[0],
                        "ci_high": ci[1],
                    }
                )
    return rows


def template_env() -> Any:
    """The Jinja2 environment of every slicewise report (templates and the shared ``style.css``), ``num`` filter."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("slicewise.diagnostics", "templates"), autoescape=select_autoescape(["html"])
    )
    env.filters["num"] = fmt
    return env


def write_report(
    directory: str | Path,
    *,
    attribution: Mapping[str, Any] | None = None,
    shift: Mapping[str, Any] | None = None,
    weights: Mapping[str, Any] | Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "slicewise audit",
    overwrite: bool = False,
    model_notes: Mapping[str, str] | None = None,
    environment: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``index.html``, ``report.json``, figures (PNG + SVG) and tables (CSV) into ``directory`` (atomically).

    An existing ``directory`` is replaced (``overwrite``) only when it is a report folder (it holds
    ``index.html`` and ``report.json``, :data:`slicewise.data.io.formats.AUDIT_REPORT_FILES`); any other is refused.

    ``attribution``: an :func:`attribution_report` or :func:`compare_models` result; ``shift``: a
    :func:`shift_report` result; ``weights``: one ``audit_weights`` result or ``{name: result}``.
    ``model_notes``: a sentence per model name shown under its results (e.g. that its decoder is
    randomly initialized because it was built from an encoder spec). ``environment``: the
    :func:`slicewise.utils.environment.environment_info` of the computation (default: this process on the CPU),
    recorded in ``report.json`` and printed in the page header.
    """
    if weights is not None and "shares" in weights:
        weights = {f"{weights.get('encoder', 'network')} ({weights.get('channel_init', '')})": weights}
    env = dict(environment) if environment is not None else environment_info()
    data = jsonable(
        {
            "title": title,
            "weights": weights,
            "attribution": attribution,
            "shift": shift,
            "model_notes": dict(model_notes or {}),
            "environment": env,
        }
    )
    ctx: dict[str, Any] = {
        "title": title,
        "json_name": "report.json",
        "notes": dict(model_notes or {}),
        "csv": [],
        "environment": environment_text(env),
    }
    with atomic_path(directory, overwrite=overwrite, kind="report") as tmp:  # replaces only a report folder
        tmp.mkdir()
        if weights is not None:
            names = list(weights)
            ctx["weights"] = {
                "figure": plot_weights([weights[n] for n in names], names, tmp / "weights_shares.png"),
                "texts": [(n, format_weights_audit(weights[n])) for n in names],
            }
            ctx["csv"].append(
                write_csv(tmp / "weights_shares.csv", _weights_rows(data["weights"]), ["network", "offset", "share"])
            )
        if attribution is not None:
            models = attribution_models(attribution)
            jmodels = attribution_models(data["attribution"])
            first = next(iter(jmodels.values()))
            what = f"{first['method']}, class {class_label(first)}, region {first['region']}"
            maps, scales = plot_maps(
                models, tmp / "attribution_maps.png", f"{', '.join(models)}: {what} (one scale per row)"
            )
            own: tuple[str | None, list[Any]] = (None, [])
            if len(models) > 1:  # each model on its own scale, so one with far smaller |A| is not drawn black
                own = plot_maps(
                    models,
                    tmp / "attribution_maps_per_model.png",
                    f"{', '.join(models)}: {what} (each model on its own scale)",
                    per_model=True,
                )
            ctx["attribution"] = {
                "info": first,
                "class_label": class_label(first),
                "models": jmodels,
                "figure": plot_shares(
                    jmodels, tmp / "attribution_shares.png", f"slice shares of {', '.join(jmodels)} ({what}), 95% CI"
                ),
                "maps": maps,
                "scales": scales,
                "maps_per_model": own[0],
                "model_scales": own[1],
                "text": format_attribution(attribution),
            }
            share_rows, summary_rows = _attribution_rows(jmodels)
            ctx["csv"].append(write_csv(tmp / "attribution_shares.csv", share_rows))
            ctx["csv"].append(write_csv(tmp / "attribution_summary.csv", summary_rows))
            if scales:
                rows = [{"row": i, "scale": "shared", "vmin": lo, "vmax": hi} for i, (lo, hi) in enumerate(scales)]
                rows += [
                    {"row": i, "scale": name, "vmin": lo, "vmax": hi}
                    for i, row in enumerate(own[1])
                    for name, (lo, hi) in row.items()
                ]
                ctx["csv"].append(write_csv(tmp / "attribution_map_scales.csv", rows, ["row", "scale", "vmin", "vmax"]))
        if shift is not None:
            ctx["shift"] = {
                "data": data["shift"],
                "figure": plot_hellinger(data["shift"], tmp / "hellinger.png"),
                "text": format_shift(shift),
                "definitions": shift_definitions(data["shift"]),
                "has_ci": any(m.get("ci") for m in data["shift"]["models"].values()),
            }
            ctx["csv"].append(write_csv(tmp / "hellinger.csv", _hellinger_rows(data["shift"])))
        (tmp / "index.html").write_text(template_env().get_template("report.html").render(**ctx), encoding="utf-8")
        write_json(tmp / "report.json", data, indent=1)
    return Path(directory)
