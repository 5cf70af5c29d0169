"""A ranking as a text table, CSV, JSON and a PNG figure in one output folder (atomic writes)."""

from __future__ import annotations

from pathlib import Path

from ..io.atomic import write_csv, write_json, write_text
from .figures import save_ranking_figure
from .ranking import RankResult

CSV_NAME = "rank-inits.csv"
JSON_NAME = "rank-inits.json"
FIGURE_NAME = "rank-inits.png"
TABLE_NAME = "rank-inits.txt"


def format_table(result: RankResult) -> str:
    """A plain-text table: pretrained candidates by rank (best marked), then random apart with the caveat."""
    width = max([len(s.init) for s in result.scores] + [4])
    header = f"{'rank':>5}  {'init':<{width}}  {'rho':>8}  {'± SE':>7}  {'d(q,k+)':>8}  {'d(q,k-)':>8}"
    lines = [header, "-" * len(header)]
    for s in result.pretrained:
        mark = "  <- best pretrained" if s.init == result.best else ""
        lines.append(f"{s.rank:>5}  {s.init:<{width}}  {s.rho:8.4f}  {s.se:7.4f}  {s.mean_d_pos:8.4f}  "
                     f"{s.mean_d_neg:8.4f}{mark}")
    if result.random:
        lines.append("")
        for s in result.random:
            lines.append(f"{'apart':>5}  {s.init:<{width}}  {s.rho:8.4f}  {s.se:7.4f}  {s.mean_d_pos:8.4f}  "
                         f"{s.mean_d_neg:8.4f}")
        lines.append(f"note: {result.warning}")
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
