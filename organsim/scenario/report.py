"""A short HTML report of one attempt: score, metrics, force over time,
learning curve and a rendered image, in one self-contained file."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

__all__ = ["write_report", "METRIC_LABELS"]

#: Human-readable label and unit of each reported metric.
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "procedure_time_s": ("procedure time", "s"),
    "path_length_m": ("instrument path length", "m"),
    "movements": ("number of movements", ""),
    "peak_force_n": ("peak instrument force", "N"),
    "mean_force_n": ("mean instrument force", "N"),
    "time_above_safe_force_s": ("time above safe force", "s"),
    "safe_force_n": ("safe force", "N"),
    "peak_stress_pa": ("peak tissue stress (von Mises)", "Pa"),
    "damage_stress_pa": ("damage stress threshold", "Pa"),
    "damaged_volume_ml": ("tissue volume above damage stress", "mL"),
    "cut_length_mm": ("cut length", "mm"),
    "planned_length_mm": ("planned cut length", "mm"),
    "mean_deviation_mm": ("mean deviation from the planned cut", "mm"),
    "hausdorff_mm": ("Hausdorff distance to the planned cut", "mm"),
    "length_outside_mm": ("cut length outside the tolerance", "mm"),
    "initial_volume_ml": ("organ volume before", "mL"),
    "resected_volume_ml": ("resected volume", "mL"),
    "remaining_volume_ml": ("remaining volume", "mL"),
    "remaining_fraction": ("remaining fraction", ""),
    "detached_fragments": ("pieces cut free of the organ", ""),
    "detached_volume_ml": ("volume of the pieces cut free", "mL"),
}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def write_report(path: str | Path, *, title: str, metrics: dict, score: dict,
                 force_times: np.ndarray | None = None,
                 forces: dict[str, np.ndarray] | None = None, safe_force_n: float | None = None,
                 curve: tuple[list[int], list[float]] | None = None,
                 image_png: bytes | None = None, notes: list[str] | None = None) -> Path:
    """Write the report.

    Parameters
    ----------
    path : str or Path
        ``.html`` file to write.
    title : str
    metrics : dict
        From :meth:`~organsim.scenario.metrics.MetricsRecorder.summary`.
    score : dict
        From :func:`~organsim.scenario.metrics.composite_score`.
    force_times : ndarray, shape (k,), optional
    forces : dict[str, ndarray (k,)], optional
        Force magnitude (N) of each instrument over time.
    safe_force_n : float, optional
        Drawn as a line on the force plot.
    curve : (attempts, scores), optional
        The learning curve.
    image_png : bytes, optional
        A rendered image of the final state.
    notes : list of str, optional
        Extra lines (what was not available, where files are).
    """
    from .metrics import PROFICIENCY_SCORE

    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # plots need matplotlib; the rest of the report does not
        plt = None
        notes = [*(notes or []), "plots need matplotlib (pip install matplotlib)"]

    parts = []
    parts.append(f"<h1>{html.escape(title)}</h1>")
    verdict = "proficient attempt" if score.get("proficient_attempt") else "not yet at proficiency level"
    parts.append(f"<p class='score'>Score <b>{score.get('score', 0):.1f}</b> / 100 "
                 f"&mdash; {verdict} (level: {PROFICIENCY_SCORE:g}, no part below 50 %)</p>")
    if score.get("parts"):
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v * 100:.0f} %</td>"
                       f"<td>{score['weights'].get(k, 0) * 100:.0f} %</td></tr>"
                       for k, v in score["parts"].items())
        parts.append("<h2>Score parts</h2><table><tr><th>part</th><th>sub-score</th>"
                     f"<th>weight</th></tr>{rows}</table>")
    rows = []
    for k, (label, unit) in METRIC_LABELS.items():
        if k in metrics:
            rows.append(f"<tr><td>{label}</td><td>{_fmt(metrics[k])}</td><td>{unit}</td></tr>")
    parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>unit</th></tr>"
                 + "".join(rows) + "</table>")
    if plt is not None and force_times is not None and forces:
        fig, ax = plt.subplots(figsize=(6.5, 2.6))
        for name, f in forces.items():
            ax.plot(force_times, f, label=name)
        if safe_force_n is not None:
            ax.axhline(safe_force_n, color="red", ls="--", lw=1, label="safe force")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("force (N)")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
        parts.append(f"<h2>Instrument force</h2><img alt='force over time' src='data:image/png;base64,{_png(fig)}'>")
        plt.close(fig)
    if plt is not None and curve is not None and len(curve[0]) > 0:
        fig, ax = plt.subplots(figsize=(6.5, 2.6))
        ax.plot(curve[0], curve[1], "o-")
        ax.axhline(PROFICIENCY_SCORE, color="green", ls="--", lw=1, label="proficiency")
        ax.set_xlabel("attempt")
        ax.set_ylabel("score")
        ax.set_ylim(0, 100)
        ax.set_xticks(curve[0])
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
        parts.append(f"<h2>Learning curve</h2><img alt='learning curve' src='data:image/png;base64,{_png(fig)}'>")
        plt.close(fig)
    if image_png:
        b64 = base64.b64encode(image_png).decode("ascii")
        parts.append(f"<h2>Final state</h2><img alt='rendered organ' src='data:image/png;base64,{b64}'>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    doc = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title)
           + "</title><style>body{font-family:sans-serif;max-width:52em;margin:2em auto;color:#222}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
           ".score{font-size:1.3em}img{max-width:100%}</style></head><body>"
           + "\n".join(parts) + "<p><small>organsim training report. Scores use organsim's own default "
           "weights and thresholds (see organsim.scenario.metrics), not a validated curriculum.</small></p>"
           "</body></html>")
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(p)
    return p
