"""What evaluate shows beside eval.json: the terminal table of every registered metric, and the copies picture.

Usage:
    from pipeline.metrics.eval_output import format_table, save_copies_picture
    print(format_table(metrics))                            # metrics: eval.json's content
    save_copies_picture(metrics, images, faces, Path("plots/copies.png"), note_when_empty=True)

The table has one row per registered metric present (pipeline.metrics.scores, in their order), the values each
declares beside it (afd_real, afd_rel), the backbone and detector, and the copy check's verdict. The picture puts
each of the first draw's closest images beside its nearest training face (metrics["copies"]["worst"]) and records
its path in metrics["copies"]["picture"]; with none listed, a note card when asked (dvc.yaml declares evaluate's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.core.image_grid import save_grid, save_note
from pipeline.metrics.scores import all_metrics


def format_table(metrics: dict[str, Any]) -> str:
    """Plain-text summary for the terminal."""
    lines = [f"{'metric':<9} {'mean':>12} {'std':>12}  draws"]
    for metric in all_metrics():
        m = metrics.get(metric.name)
        if m is None:
            continue
        draws = " ".join(f"{v:.4g}" for v in m["draws"])
        lines.append(f"{metric.name:<9} {m['mean']:>12.6g} {m['std']:>12.4g}  {draws}")
    extras = [key for metric in all_metrics() for key, _ in metric.extras if key in metrics]
    if extras:
        lines.append("   ".join(f"{key} {_fmt(metrics[key])}" for key in extras))
    prov = metrics["provenance"]
    detector = prov["detector"].get("name")
    lines.append(f"backbone {prov['fid_backbone']}  detector {detector}  images {prov['image_count']}")
    copies = metrics.get("copies")
    if copies is not None:
        lines += _copy_lines(copies)
    return "\n".join(lines)


def _copy_lines(copies: dict[str, Any]) -> list[str]:
    flagged = copies["flagged"]
    shown = ", ".join(str(i) for i in flagged[:20]) + (" ..." if len(flagged) > 20 else "")
    lines = [f"copies of training faces (distance < {copies['threshold']:.4g}): {len(flagged)}"
             + (f" (images {shown})" if flagged else "")]  # fmt: skip
    if "picture" in copies:
        lines.append(f"closest images beside their training faces: {copies['picture']}")
    else:
        lines.append(f"no image within {copies['near']:.4g} of a training face (as close as new faces come)")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def save_copies_picture(
    metrics: dict[str, Any], images: np.ndarray, faces: np.ndarray, path: Path, note_when_empty: bool = False
) -> None:
    """One row per listed image: the image, then its nearest training face. Nothing listed: no picture, or a note
    card saying how close none came (note_when_empty)."""
    copies = metrics.get("copies", {})
    rows = copies.get("worst", [])
    if not rows:
        if note_when_empty and copies:
            save_note(f"no sample within {copies['near']:.4g} of a training face", path)
        return
    size = faces.shape[1:3]
    pairs = []
    for row in rows:
        image = images[row["image"]]
        if image.shape[:2] != size:
            image = np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.LANCZOS))
        pairs += [image, np.asarray(faces[row["training_index"]])]
    save_grid(np.stack(pairs), path, ncol=2)
    metrics["copies"]["picture"] = str(path)
