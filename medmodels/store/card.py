"""Render a manifest as the human README.md of its version folder (the model card)."""

from __future__ import annotations

from typing import Any

from medmodels.store.manifest import Manifest

RESEARCH_ONLY = "Research use only — not for diagnosis."


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _bullets(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items] if items else ["- (none stated)"]


def _step(step: Any) -> str:
    params = {k: v for k, v in step.model_dump(exclude_none=True).items() if k != "op"}
    args = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"`{step.op}`" + (f" ({args})" if args else "")


def render_card(manifest: Manifest) -> str:
    """The model card as Markdown: what the model is for, how well it did, and its I/O."""
    m = manifest
    card = m.card
    lines: list[str] = [
        f"# {m.title}",
        "",
        f"**{RESEARCH_ONLY}**",
        "",
        m.summary,
        "",
        f"- Model: `{m.name}` version `{m.version}`"
        + (f" (derived from `{m.derived_from}`)" if m.derived_from else ""),
        f"- Task: {m.task}",
        f"- Created: {m.created.isoformat()}",
        "",
        "## Intended use",
        "",
        card.intended_use,
        "",
        "## Limitations",
        "",
        *_bullets(list(card.limitations)),
        "",
        "## Training data",
        "",
        card.training_data,
        "",
        "## Metrics",
        "",
    ]
    if card.metrics:
        lines += ["| Metric | Value | Dataset | Note |", "| --- | --- | --- | --- |"]
        for metric in card.metrics:
            lines.append(
                f"| {_cell(metric.name)} | {metric.value:g} | {_cell(metric.dataset)} "
                f"| {_cell(metric.note or '')} |"
            )
    else:
        lines.append("No metrics reported.")
    lines += ["", "## Warnings", "", *_bullets(list(card.warnings)), ""]

    spec = m.input
    shape = ", ".join("dynamic" if d is None else str(d) for d in spec.shape)
    lines += [
        "## Input",
        "",
        f"- Modalities: {', '.join(spec.modalities)}",
        f"- Dimensionality: {spec.dimensionality}",
        f"- Tensor: `{spec.name}` {spec.dtype} [{shape}]",
        f"- Units expected: {spec.units}",
    ]
    if spec.spacing_range_mm is not None:
        low, high = spec.spacing_range_mm
        lines.append(f"- Accepted in-plane spacing: {low:g}–{high:g} mm")
    lines.append(
        "- Preprocessing: "
        + (" → ".join(_step(s) for s in spec.preprocessing) if spec.preprocessing else "none")
    )
    out = m.output
    lines += [
        "",
        "## Output",
        "",
        f"- Tensors: {', '.join(f'`{n}`' for n in out.names)}",
        f"- Activation: {out.activation}",
    ]
    if out.threshold is not None:
        lines.append(f"- Decision threshold: {out.threshold:g}")
    lines.append(
        "- Postprocessing: "
        + (" → ".join(_step(s) for s in out.postprocessing) if out.postprocessing else "none")
    )
    lines += ["", "| Index | Label | Colour |", "| --- | --- | --- |"]
    lines += [f"| {lb.index} | {_cell(lb.name)} | `{lb.colour}` |" for lb in out.labels]
    lines += ["", "## Changelog", "", m.changelog, ""]
    listed = {k: v for k, v in m.files.items() if k != "README.md"}
    if listed:
        lines += ["## Files", "", "| File | SHA-256 |", "| --- | --- |"]
        lines += [f"| `{name}` | `{digest}` |" for name, digest in listed.items()]
        lines.append("")
    lines += [
        "## Licence and authors",
        "",
        f"- Licence: {m.licence}",
        f"- Authors: {', '.join(m.authors)}",
        "",
        "---",
        "",
        f"*{RESEARCH_ONLY} Generated from manifest.json by MedModels.*",
        "",
    ]
    return "\n".join(lines)
