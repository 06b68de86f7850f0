"""HTML: the report as one self-contained page, plots embedded as data: URIs, tables styled by
how their cells ended; nothing is loaded from the network.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from search.inspection import HP_COLUMNS
from search.outcomes import OUTCOMES
from search.reporting.plots import CONDITIONAL, PLOTS
from search.reporting.tables import Table

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3} td.diverged{color:#b00} td.none{color:#999}
td.lab{color:#777;font-style:italic}
img{max-width:100%;border:1px solid #ddd} .note{color:#555;font-size:.9em}
figure{margin:1.5em 0} figcaption{font-weight:bold;margin-bottom:.3em}
"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in [t.row_header, *t.columns])
    body = []
    for label, cells in t.rows:
        tds = []
        for c in cells:
            cls = (
                "lab"
                if c.fixed is not None
                else "diverged"
                if c.text == "diverged"
                else "none"
                if c.text == "-"
                else ""
            )
            tds.append(f'<td class="{cls}">{_esc(c.text)}</td>')
        body.append(f"<tr><td>{_esc(label)}</td>{''.join(tds)}</tr>")
    note = f'<p class="note">{_esc(t.note)}</p>' if t.note else ""
    return f"<h3>{_esc(t.title)}</h3><table><tr>{head}</tr>{''.join(body)}</table>{note}"


def page(meta: dict[str, Any], tables: list[Table], out: Path, notes: dict[str, str]) -> str:
    """The report page. Images are embedded as data: URIs (the page works alone and offline)
    and link to their PNG files beside it; nothing is loaded from the network."""
    c = meta["counts"]
    summary = ", ".join(f"{c[s]} {s}" for s in OUTCOMES if c[s] or s in ("complete", "diverged"))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>fsearch report: {_esc(', '.join(meta['studies']))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>fsearch report: {_esc(', '.join(meta['studies']))}</h1>",
        f"<p>{sum(c.values())} trials: {_esc(summary)}. Storage {_esc(meta['storage'])}; "
        f"generated {_esc(meta['generated'])}.</p>",
    ]
    best = meta["best"]
    if best:
        hp = best["hyperparams"]
        idle = {name for name, on, acts, _ in CONDITIONAL if on in hp and not acts(hp[on])}
        keys = [k for k in (*HP_COLUMNS, "epochs") if k in hp and k not in idle]
        desc = ", ".join(
            f"{k} {format(hp[k], '.4g') if isinstance(hp[k], float) else hp[k]}" for k in keys
        )
        parts.append(
            f"<h2>Best trial</h2><p><b>{best['value']:.4f}</b> {_esc(meta['metric'])}: "
            f"{_esc(best['study'])} trial #{best['trial']}, {_esc(best['architecture'])} "
            f"({_esc(desc)}).</p>"
        )
        if meta.get("lab_best"):
            lb = meta["lab_best"]
            parts.append(
                f"<p>The lab report's best: <b>{lb['accuracy']}</b> with {lb['architecture']}, "
                "selected on the test set (here: the held-out validation split; the test set "
                "stays unseen until <code>fsearch export</code>).</p>"
            )
    noise = meta.get("selection_noise")
    if noise:
        agree = noise["rank_agreement"]
        parts.append(
            "<h2>How much of the ranking is noise</h2><p>The best configurations trained "
            "again exactly as in the search (same split and epochs, best epoch scored) with "
            "another seed. "
            + (
                f"Rank agreement (Spearman) between the two columns: <b>{agree:.2f}</b>."
                if agree is not None
                else ""
            )
            + "</p><table><tr><th>rank</th><th>trial</th><th>architecture</th>"
            "<th>at selection</th><th>another seed</th><th>difference</th></tr>"
        )
        for r in noise["rows"]:
            again = r["reseeded"]
            diff = "" if again is None else f"{again - r['selection']:+.4f}"
            parts.append(
                f"<tr><td>{r['rank']}</td><td>#{r['trial']}</td>"
                f"<td>{_esc(str(r['architecture']))}</td><td>{r['selection']:.4f}</td>"
                f"<td>{'-' if again is None else f'{again:.4f}'}</td><td>{diff}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for filename, title in PLOTS:
        data = base64.b64encode((out / filename).read_bytes()).decode("ascii")
        note = f'<p class="note">{_esc(notes[filename])}</p>' if filename in notes else ""
        parts.append(
            f"<figure><figcaption>{_esc(title)}</figcaption>"
            f'<a href="{filename}"><img alt="{_esc(title)}" src="data:image/png;base64,{data}">'
            f"</a>{note}</figure>"
        )
    parts.append(
        f"<h2>Tables</h2><p class='note'>Best {_esc(meta['metric'])} (best epoch) of the runs "
        "in each cell; pruned: the best pruned run's best epoch and where it stopped; "
        "<span style='color:#b00'>diverged</span>: the loss became NaN; "
        "(chance): finished, but learned nothing (the lab report wrote both as 0.1); "
        "'-': no run.</p>"
    )
    parts += [_html_table(t) for t in tables]
    parts.append("</body></html>\n")
    return "\n".join(parts)
