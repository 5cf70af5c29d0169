"""A ranking as a text table, CSV, JSON and a PNG figure in one output folder (atomic writes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import write_csv, write_json, write_text
from .agreement import spearman, transferability_indicator_score
from .figures import save_ranking_figure
from .ranking import RankResult

CSV_NAME = "rank-inits.csv"
JSON_NAME = "rank-inits.json"
FIGURE_NAME = "rank-inits.png"
TABLE_NAME = "rank-inits.txt"


def format_table(result: RankResult) -> str:
    """A plain-text table: pretrained candidates by rank (best marked), then random apart with the caveat."""
    width = max([len(s.init) for s in result.scores] + [4])
    header = (f"{'rank':>5}  {'init':<{width}}  {'rho':>8}  {'± SE':>7}  {'vs best ± paired SE':>19}  "
              f"{'d(q,k+)':>8}  {'d(q,k-)':>8}")
    lines = [header, "-" * len(header)]

    def line(rank: str, s: Any, mark: str = "") -> str:
        delta, delta_se = result.versus_best(s.init)
        versus = "" if s.init == result.best or delta != delta else f"{delta:+.4f} ± {delta_se:.4f}"
        return (f"{rank:>5}  {s.init:<{width}}  {s.rho:8.4f}  {s.se:7.4f}  {versus:>19}  {s.mean_d_pos:8.4f}  "
                f"{s.mean_d_neg:8.4f}{mark}")

    for s in result.pretrained:
        lines.append(line(str(s.rank), s, "  <- best pretrained" if s.init == result.best else ""))
    if result.random:
        lines.append("")
        lines.extend(line("apart", s) for s in result.random)
        lines.append(f"note: {result.warning}")
    lines.append("vs best: rho minus the top candidate's rho, with the standard error of the paired "
                 "difference (all candidates see the same views)")
    cfg = result.config
    lines.append("")
    lines.append(f"{result.sample.get('n')} windows of {cfg.get('patch_size')} px, window K = {cfg.get('window')}, "
                 f"{'pooled' if cfg.get('pooled') else 'unpooled'} features, eps = {cfg.get('epsilon')}, "
                 f"seed {cfg.get('seed')}")
    return "\n".join(lines)


def write_ranking(result: RankResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the table, CSV, JSON and figure into ``out_dir``; return their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "table": write_text(out / TABLE_NAME, format_table(result) + "\n"),
        "csv": write_csv(out / CSV_NAME, result.rows()),
        "json": write_json(out / JSON_NAME, result.to_dict()),
        "figure": save_ranking_figure(result, out / FIGURE_NAME),
    }


# ------------------------------------------------------------------------------ study --rank-inits
def add_robustness_columns(rows: Sequence[dict[str, Any]], result: RankResult) -> None:
    """Give each study row (keyed by ``init``) the columns ``rho`` and ``rho_se`` of its init, in place."""
    for row in rows:
        score = result.score_of(str(row.get("init")))
        row["rho"] = score.rho if score is not None else math.nan
        row["rho_se"] = score.se if score is not None else math.nan


def study_section(result: RankResult, seg_rows: Sequence[dict[str, Any]],
                  asym_rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[str]:
    """Markdown lines for a study report: rho beside each arm's Dice and SWd, Spearman and TIS.

    Spearman and TIS are computed over the *pretrained* arms only (random is ranked apart) and only with
    at least three of them; with fewer the section says so instead of reporting a number.
    """
    method = methods[0] if methods else None
    swd = {r["init"]: r for r in asym_rows if r.get("method") == method}
    lines = [
        "## Robustness of each init before training (rank-inits)",
        "",
        f"rho on {result.sample.get('n')} unlabelled windows of the training slices "
        f"({'pooled' if result.config.get('pooled') else 'unpooled'} features, eps = {result.config.get('epsilon')},"
        f" seed {result.config.get('seed')}); higher is expected to transfer better. {result.warning}.",
        "",
        "| init | rho ± SE | Dice | SWd pooled" + (f" ({method})" if method else "") + " |",
        "|---|---|---|---|",
    ]
    for row in seg_rows:
        init = row["init"]
        score = result.score_of(init)
        rho = "n/a"
        if score is not None:
            rho = f"{score.rho:.4f} ± {score.se:.4f}" + (" (random, apart)" if score.is_random else "")
        asym = swd.get(init)
        swd_text = f"{asym['swd_pooled']:.4f}" if asym else "n/a"
        lines.append(f"| {init} | {rho} | {row['dice']:.4f} | {swd_text} |")
    pretrained = [r["init"] for r in seg_rows if (s := result.score_of(r["init"])) is not None and not s.is_random]
    lines.append("")
    if len(pretrained) >= 3:
        rho = {i: result.score_of(i).rho for i in pretrained}  # type: ignore[union-attr]
        dice = {r["init"]: r["dice"] for r in seg_rows if r["init"] in rho}
        sp = spearman([rho[i] for i in pretrained], [dice[i] for i in pretrained])
        tis = transferability_indicator_score(rho, dice)
        lines.append(f"Over the {len(pretrained)} pretrained arms: Spearman(rho, Dice) = {sp:+.3f}; transferability "
                     f"indicator score (Dice of the top-rho arm / best Dice) = {tis:.4f}.")
    else:
        lines.append(f"Spearman and TIS need at least three pretrained arms; this study has {len(pretrained)}.")
    lines.append("")
    return lines
