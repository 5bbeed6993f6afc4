"""The small report of a pretraining run: ``report.html`` (shared stylesheet inlined) and ``report/curves.png``
(+ SVG): training loss, embedding spread (std · sqrt(dim); 1 ≈ spread over the sphere, 0 = collapsed) and
the k-NN probe score against the step, with the provenance of the weights file."""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path
from typing import Any

from slicewise.config import PretrainConfig
from slicewise.data.io.outputs import atomic_path
from slicewise.utils.environment import environment_text
from slicewise.utils.figures import pyplot, save_figure
from slicewise.utils.table import num

__all__ = ["read_metrics", "write_report"]

CURVES = ("train/loss", "val/embedding_std_ratio", "val/knn")


def read_metrics(csvs: list[Path]) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` from the run's ``metrics.csv`` files (one per (re)start; the last
    value logged for a step wins)."""
    import pandas as pd

    series: dict[str, dict[int, float]] = {}
    for csv in csvs:
        try:
            frame = pd.read_csv(csv)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        for name in CURVES:
            if name in frame and "step" in frame:
                rows = frame[["step", name]].dropna()
                series.setdefault(name, {}).update({int(s): float(v) for s, v in zip(rows["step"], rows[name])})
    return {k: sorted(v.items()) for k, v in series.items()}


def _plot(metrics: dict[str, list[tuple[int, float]]], path: Path) -> str | None:
    shown = [m for m in CURVES if metrics.get(m)]
    if not shown:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 2.6), squeeze=False)
    labels = {
        "train/loss": "training loss",
        "val/embedding_std_ratio": "embedding std × √dim",
        "val/knn": "k-NN probe (balanced acc.)",
    }
    for ax, name in zip(axes[0], shown):
        steps, values = zip(*metrics[name])
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3)
        ax.set_title(labels[name])
        ax.set_xlabel("step")
    fig.tight_layout()
    return save_figure(fig, path)


def write_report(
    out: Path, cfg: PretrainConfig, provenance: dict[str, Any], csvs: list[Path], collapsed: bool = False
) -> Path:
    """Write ``report.html`` and ``report/curves.png`` into run folder ``out``; returns the HTML path."""
    metrics = read_metrics(csvs)
    (out / "report").mkdir(exist_ok=True)
    png = _plot(metrics, out / "report" / "curves.png")
    style = (resources.files("slicewise.diagnostics") / "templates" / "style.css").read_text()
    rows = [
        ("method", cfg.method.name),
        ("encoder", cfg.model.encoder),
        ("start point", cfg.model.weights),
        ("k (in_slices), dz", f"{cfg.model.in_slices}, {cfg.data.dz}"),
        ("channel strategy", cfg.model.channel_init),
        ("steps", str(provenance.get("steps"))),
        ("batch", str(cfg.data.batch_size)),
        ("z-context positives", str(cfg.views.z_context or "off")),
        ("volumes", ", ".join(str(v) for v in cfg.data.raw) or "phantom"),
    ]
    last = {k: v[-1][1] for k, v in metrics.items() if v}
    rows += [(f"final {k}", num(v)) for k, v in last.items()]
    table = "\n".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    warning = (
        (
            '<p class="warning">The embedding collapsed during the run (all views mapped to nearly one point): '
            "these weights are unlikely to help.</p>"
        )
        if collapsed
        else ""
    )
    figure = f'<img src="report/{png}" alt="pretraining curves">' if png else "<p>No metrics were logged.</p>"
    env = provenance.get("environment") or {}
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>slicewise pretrain</title>'
        f"<style>{style}</style></head>"
        f"<body><h1>Self-supervised pretraining</h1>{warning}<table>{table}</table>{figure}"
        f"<p>Weights: <code>encoder.safetensors</code> — use "
        f"<code>model.weights={html.escape(str(out / 'encoder.safetensors'))}</code> "
        f"with model.encoder={html.escape(cfg.model.encoder)}, model.in_slices={cfg.model.in_slices}, "
        f"model.channel_init={html.escape(cfg.model.channel_init)}.</p>"
        f'<p class="env">{html.escape(environment_text(env)) if env else ""}</p></body></html>'
    )
    path = out / "report.html"
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(page)
    return path
