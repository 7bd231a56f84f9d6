"""Batch results as a worklist: rows ordered by probability, CSV export, dataset examples."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .classifier import Analysis, Prediction
from .contract import CLASS_NAMES
from .errors import InputError
from .render import probability_percent_value, write_csv

WORKLIST_COLUMNS = ["file", "verdict", "probability_pneumonia_pct", "prevalence_assumed_pct", "reading", "error"]
WORKLIST_HEADERS = {
    "file": "File",
    "verdict": "Verdict",
    "probability_pneumonia_pct": "Pneumonia %",
    "prevalence_assumed_pct": "At prevalence %",
    "reading": "Reading",
    "error": "Why it was not scored",
}
"""What a person reads above each column; the CSV keeps the stable machine names."""


def worklist_rows(results: list[tuple[str, Analysis | Prediction | InputError]]) -> list[dict[str, Any]]:
    """Scored images first, highest probability first; rejected files last with their reason."""
    scored, rejected = [], []  # scored: (probability, row)
    for name, result in results:
        if isinstance(result, InputError):
            rejected.append(
                {
                    "file": name,
                    "verdict": "",
                    "probability_pneumonia_pct": None,
                    "prevalence_assumed_pct": None,
                    "reading": "not scored",
                    "error": result.message,
                }
            )
            continue
        p = result.prediction if isinstance(result, Analysis) else result
        scored.append((
            p.probability_pneumonia,
            {
                "file": name,
                "verdict": p.label,
                "probability_pneumonia_pct": probability_percent_value(p.probability_pneumonia),
                "prevalence_assumed_pct": round(100 * p.prevalence, 1) if p.prevalence else None,
                "reading": p.band,
                "error": "",
            },
        ))  # fmt: skip
    scored.sort(key=lambda pair: pair[0], reverse=True)  # by the probability itself, not its rounding
    return [row for _, row in scored] + rejected


def worklist_csv(rows: list[dict[str, Any]]) -> str:
    """The worklist as CSV text, formula-safe (``render.write_csv``)."""
    buffer = io.StringIO()
    write_csv(buffer, WORKLIST_COLUMNS, rows)
    return buffer.getvalue()


def example_images(data_dir: Path | None, per_class: int = 3) -> dict[str, Path]:
    """A few test images of each class, by display name, when the dataset is present."""
    examples: dict[str, Path] = {}
    if data_dir is None:
        return examples
    for class_name in CLASS_NAMES:
        folder = Path(data_dir) / "test" / class_name
        if folder.is_dir():
            for path in sorted(folder.iterdir())[:per_class]:
                examples[f"{class_name.lower()}: {path.name}"] = path
    return examples
