"""``presets``: the known reranker families, and the families that are refused."""

from __future__ import annotations

import click


@click.command()
def presets() -> None:
    """List the known reranker families, and the families that are refused."""
    from reranker_seqcls.convert.output_config import served_score
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.recipes.refusals import REFUSALS, qwen3_vl_refusal

    for preset in PRESETS.values():
        click.echo(f"{preset.name}: {preset.description}")
        click.echo(f"  classifier  {preset.describe_classifier()}, method {preset.method}, "
                   f"scale {preset.scale:g}")  # fmt: skip
        click.echo(f"  score       {preset.score_formula}")
        click.echo(f"  served      {served_score(preset)}")
        click.echo(f"  BOS         {preset.bos_rule}")
        patterns = " or ".join(preset.name_patterns)
        click.echo(f"  detected    repo/directory names matching {patterns}; or "
                   "sentence-transformers LogitScore files that agree")  # fmt: skip
        click.echo(f"  facts       {preset.facts_source} (docs/families.md)")
    click.echo("refused (cannot become a linear score head):")
    vl = qwen3_vl_refusal()
    for refusal in (*REFUSALS, *([vl] if vl is not None else [])):
        markers = [*refusal.name_patterns, *refusal.architectures, *refusal.model_types]
        click.echo(f"  {refusal.family}: {refusal.reason} [detected by {', '.join(markers)}]")
