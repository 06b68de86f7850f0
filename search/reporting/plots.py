"""Plots: every PNG of the report, drawn with matplotlib and Optuna's matplotlib plots over an
in-memory study rebuilt from the runs; a plot that cannot be drawn becomes a figure saying why.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.reporting.runs import Run
from search.reporting.tables import Cell

if TYPE_CHECKING:
    import optuna

TOP_CURVES = 8  # learning curves drawn in learning-curves.png
TOP_PARALLEL = 20  # completed trials drawn in parallel-coordinate.png (the best ones)
FEW_VALUES = 4  # a numeric hyperparameter with at most this many values is plotted as choices
PLOTS = (
    ("optimization-history.png", "Optimization history"),
    ("param-importances.png", "Hyperparameter importances"),
    ("parallel-coordinate.png", "Parallel coordinates"),
    ("lr-momentum.png", "Learning rate vs momentum (SGD runs)"),
    ("learning-curves.png", "Learning curves of the top trials"),
    ("trial-states.png", "Trials by end state"),
    ("pareto.png", "Score vs parameters: the Pareto front"),
)


# Hyperparameters that act only on one branch of another: momentum in SGD trials only, the
# regularizer's strength only with a regularizer. (parameter, the one it hangs on, test, where)
CONDITIONAL = (
    ("momentum", "optimizer", lambda v: v == "sgd", "SGD trials"),
    ("reg_strength", "regularizer", lambda v: v != "none", "L1/L2 trials"),
)


def view_study(runs: list[Run], *, applicable_only: bool = False) -> optuna.Study:
    """An in-memory study of the runs whose params are *all* hyperparameters that vary.

    Optuna's plots read trial.params, which holds only suggested values: fixed ones are
    missing and grid studies of different factors share no params. Rebuilding the trials from
    the stored hyperparameters lets every plot see learning rate, momentum, etc. everywhere.
    `width` is the first hidden layer's width. applicable_only: a CONDITIONAL parameter only
    in the trials where it acts (an Adam trial's stored momentum 0.0 is no measurement).
    """
    # Over 60 lines: infer each param's distribution, then rebuild the trials; one shared state.
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.trial import TrialState, create_trial

    def params_of(r: Run) -> dict[str, Any]:
        p = {k: v for k, v in r.hp.items() if k not in ("widths", "epochs")}
        if r.widths:
            p["layers"], p["width"] = len(r.widths), r.widths[0]
        if applicable_only:
            for name, on, acts, _ in CONDITIONAL:
                if on in p and not acts(p[on]):
                    p.pop(name, None)
        return {k: v for k, v in p.items() if isinstance(v, (int, float, str))}

    done = [r for r in runs if r.state in ("complete", "pruned", "diverged", "failed")]
    done.sort(key=lambda r: (r.started or _dt.datetime.min, r.study, r.trial))
    all_params = [params_of(r) for r in done]
    keys = sorted({k for p in all_params for k in p})
    dists: dict[str, Any] = {}
    for k in keys:
        vals = {p[k] for p in all_params if k in p}
        if len(vals) < 2:
            continue  # a constant tells the plots nothing
        if all(isinstance(v, str) for v in vals):
            dists[k] = CategoricalDistribution(sorted(vals))
        elif len(vals) <= FEW_VALUES and k not in ("layers", "width"):
            # A handful of values (batch sizes 256 and 512): one tick each, not a number line
            # from 245 to 265 in the parallel-coordinate plot.
            dists[k] = CategoricalDistribution(sorted(vals))
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            dists[k] = IntDistribution(min(vals), max(vals), log=k == "width")
        elif all(isinstance(v, (int, float)) for v in vals):
            lo, hi = float(min(vals)), float(max(vals))
            dists[k] = FloatDistribution(lo, hi, log=k == "learning_rate" and lo > 0)
    state_of = {
        "complete": TrialState.COMPLETE,
        "pruned": TrialState.PRUNED,
        "diverged": TrialState.PRUNED,
        "failed": TrialState.FAIL,
    }
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    maximize = all(r.maximize for r in runs)
    view = optuna.create_study(
        direction="maximize" if maximize else "minimize", study_name="report"
    )
    for r, p in zip(done, all_params, strict=True):
        params = {
            k: float(v) if isinstance(dists[k], FloatDistribution) else v
            for k, v in p.items()
            if k in dists
        }
        view.add_trial(
            create_trial(
                state=state_of[r.state],
                value=r.value if r.state == "complete" else None,
                params=params,
                distributions={k: dists[k] for k in params},
                intermediate_values={i + 1: v for i, v in enumerate(r.curve) if math.isfinite(v)},
                user_attrs={"study": r.study, "trial": r.trial, "state": r.state},
            )
        )
    return view


def _figure(plot: Callable[[], Any]):
    """Run an Optuna matplotlib plot and return its figure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning on every optuna.visualization call
        ax = plot()
    if hasattr(ax, "flat"):  # an array of axes
        ax = ax.flat[0]
    return ax.figure


def _placeholder(title: str, reason: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=11, color="0.3")
    return fig


def _plot_parallel(runs: list[Run], *, label: str, top: int = TOP_PARALLEL):
    """Optuna's parallel-coordinate plot of the `top` best completed trials: at 200 trials
    its 40-odd lines of every completed trial hide where the good ones lie. Conditional
    parameters only where they act (an Adam trial's momentum is drawn as missing, not 0)."""
    import optuna
    import optuna.visualization.matplotlib as ovm

    done = [r for r in runs if r.state == "complete" and r.value is not None]
    if not done:
        raise ValueError("no completed trial yet")
    best = [(r.study, r.trial) for r in sorted(done, key=lambda r: r.rank)[:top]]
    view = view_study(runs, applicable_only=True)  # distributions from every run
    by_run = {(t.user_attrs["study"], t.user_attrs["trial"]): t for t in view.trials}
    shown = optuna.create_study(direction=view.direction, study_name="report-top")
    shown.add_trials([by_run[key] for key in best])  # best first, as Optuna then draws them
    ax = _figure(lambda: ovm.plot_parallel_coordinate(shown, target_name=label)).axes[0]
    what = f"the best {len(best)} of {len(done)}" if len(best) < len(done) else f"all {len(done)}"
    ax.set_title(f"Parallel coordinates of {what} completed trials")
    return ax.figure


def _plot_lr_momentum(runs: list[Run]):
    """One marker per (learning rate, momentum) point: colour = the best run there, red x =
    some run there diverged; grids put several architectures on one point."""
    import matplotlib.pyplot as plt

    # A running trial's hyperparameters are not stored yet (only its suggested params).
    sgd = [
        r
        for r in runs
        if r.hp.get("optimizer", "sgd") == "sgd" and "momentum" in r.hp and "learning_rate" in r.hp
    ]
    if not sgd:
        raise ValueError("no SGD runs: momentum only applies to SGD")
    points: dict[tuple[float, float], list[Run]] = {}
    for r in sgd:
        points.setdefault((r.hp["learning_rate"], r.hp["momentum"]), []).append(r)
    fig, ax = plt.subplots(figsize=(8, 5))
    # Points where every run was pruned: drawn too (a study of 200 trials may have only a few
    # SGD runs, all stopped early), hollow, with the best epoch's score beside them.
    only_pruned = {
        p: min(rs, key=lambda r: r.rank)
        for p, rs in points.items()
        if all(r.state == "pruned" for r in rs) and any(r.value is not None for r in rs)
    }
    if only_pruned:
        ax.scatter(
            [p[0] for p in only_pruned],
            [p[1] for p in only_pruned],
            facecolors="none",
            edgecolors="0.4",
            s=60,
            label=f"pruned ({len(only_pruned)} points)",
            zorder=2,
        )
        if len(only_pruned) <= 40:
            for p, r in only_pruned.items():
                ax.annotate(
                    f"{r.value:.3f} @{len(r.curve)}",
                    p,
                    textcoords="offset points",
                    xytext=(6, -10),
                    fontsize=7,
                    color="0.4",
                )
    best = {p: Cell(rs).best for p, rs in points.items()}
    done = [p for p, v in best.items() if v is not None]
    if done:
        sc = ax.scatter(
            [p[0] for p in done],
            [p[1] for p in done],
            c=[best[p] for p in done],
            cmap="viridis",
            # Contrast among the good runs; runs that learned nothing all get the darkest.
            vmin=max(min(best[p] for p in done), max(best[p] for p in done) - 0.08),
            s=70,
            edgecolors="k",
            linewidths=0.4,
            zorder=2,
        )
        fig.colorbar(sc, ax=ax, label="best score at the point (completed runs)")
        if len(done) <= 40:  # a grid: write the numbers too
            for p in done:
                ax.annotate(
                    f"{best[p]:.3f}", p, textcoords="offset points", xytext=(6, 4), fontsize=8
                )
    for state, style in (
        ("diverged", {"marker": "x", "c": "red", "s": 90, "zorder": 3}),
        ("failed", {"marker": "s", "c": "black", "s": 30, "zorder": 3}),
    ):
        hit = {p: sum(r.state == state for r in rs) for p, rs in points.items()}
        hit = {p: n for p, n in hit.items() if n}
        if hit:
            ax.scatter(
                [p[0] for p in hit],
                [p[1] for p in hit],
                label=f"{state} ({sum(hit.values())} runs)",
                **style,
            )
    lrs = [p[0] for p in points]
    if min(lrs) > 0 and max(lrs) / min(lrs) > 5:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("momentum")
    ax.set_title(f"Learning rate vs momentum ({len(sgd)} SGD runs at {len(points)} points)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    return fig


def describe(r: Run) -> str:
    """Architecture and the hyperparameters that are not the lab's baseline, in a few words."""
    hp = r.hp
    parts = [r.architecture]
    if hp.get("optimizer", "sgd") != "sgd":
        parts.append(str(hp["optimizer"]))
    if "learning_rate" in hp:
        parts.append(f"lr {hp['learning_rate']:.3g}")
    if hp.get("momentum"):
        parts.append(f"mom {hp['momentum']:.2g}")
    if hp.get("regularizer", "none") != "none":
        parts.append(f"{hp['regularizer']} {hp.get('reg_strength', 0):.0e}")
    if hp.get("dropout"):
        parts.append(f"drop {hp['dropout']:.2g}")
    return " ".join(parts)


def _plot_curves(runs: list[Run], *, top: int, multi: bool, label: str):
    import matplotlib.pyplot as plt

    best = sorted((r for r in runs if r.state == "complete" and r.curve), key=lambda r: r.rank)[
        :top
    ]
    if not best:
        raise ValueError("no completed trial yet")
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in best:
        name = f"{r.study} #{r.trial}" if multi else f"#{r.trial}"
        ax.plot(
            range(1, len(r.curve) + 1),
            r.curve,
            marker="o",
            markersize=3,
            label=f"{r.value:.4f} {describe(r)} ({name})",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"Learning curves of the top {len(best)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _plot_states(counts: dict[str, int]):
    import matplotlib.pyplot as plt

    shown = ["complete", "pruned", "diverged", "failed"] + [
        s for s in ("running", "waiting") if counts.get(s)
    ]
    colors = {"complete": "tab:green", "pruned": "tab:gray", "diverged": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(
        shown, [counts.get(s, 0) for s in shown], color=[colors.get(s, "tab:blue") for s in shown]
    )
    ax.bar_label(bars)
    ax.set_ylabel("trials")
    ax.set_title(f"Trials by end state ({sum(counts.values())} in all)")
    ax.margins(y=0.15)
    return fig


def pareto_front(runs: list[Run]) -> list[Run]:
    """The complete runs no other complete run beats with as few parameters or fewer, by
    parameter count."""
    done = sorted(
        (r for r in runs if r.state == "complete" and r.value is not None and r.n_params),
        key=lambda r: (r.n_params, r.rank),
    )
    front: list[Run] = []
    for r in done:
        if not front or r.rank < front[-1].rank:
            front.append(r)
    return front


def _importances_with_counts(runs: list[Run]):
    """Optuna's importance bars over the parameters that act in every trial, each label
    saying how many completed trials it rests on; a CONDITIONAL parameter that acts in only
    some (momentum: SGD trials) is named under the plot with its count instead of being
    ranked on the values it was never used with."""
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    view = view_study(runs, applicable_only=True)
    fig = _figure(lambda: ovm.plot_param_importances(view))
    done = view.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ax = fig.axes[0]
    ranked, labels = set(), []
    for tick in ax.get_yticklabels():
        name = tick.get_text()
        ranked.add(name)
        n = sum(name in t.params for t in done)
        labels.append(f"{name} ({n} of {len(done)} trials)")
    ax.set_yticks(ax.get_yticks(), labels)
    left_out = [
        f"{name} (in {sum(name in t.params for t in done)} of {len(done)}, {where})"
        for name, _, _, where in CONDITIONAL
        if name not in ranked and any(name in t.params for t in view.trials)
    ]
    if left_out:
        fig.subplots_adjust(bottom=0.2)  # room under the axis label
        fig.text(
            0.01,
            0.005,
            "Not ranked (they act in only some trials): " + "; ".join(left_out),
            fontsize=8,
            wrap=True,
        )
    return fig


def _plot_pareto(runs: list[Run], *, label: str, budget: int | None):
    import matplotlib.pyplot as plt

    done = [r for r in runs if r.state == "complete" and r.value is not None and r.n_params]
    if not done:
        raise ValueError("no completed trial yet")
    front = pareto_front(runs)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter([r.n_params for r in done], [r.value for r in done], s=14, c="tab:gray",
               alpha=0.6, label=f"completed trials ({len(done)})")  # fmt: skip
    ax.step([r.n_params for r in front], [r.value for r in front], where="post", c="tab:red",
            marker="o", markersize=4, label=f"Pareto front ({len(front)})")  # fmt: skip
    if budget:
        ax.axvline(budget, ls="--", c="tab:blue", label=f"max_params {budget:,}")
        within = [r for r in front if r.n_params <= budget]
        if within:
            best = within[-1]
            ax.annotate(f"#{best.trial} {best.architecture}: {best.value:.4f}",
                        (best.n_params, best.value), textcoords="offset points",
                        xytext=(6, -14), fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(label)
    ax.set_title("Best score for a size: the Pareto front of the completed trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right" if done[0].maximize else "upper right")
    return fig


def draw_plots(
    runs: list[Run],
    out: Path,
    *,
    counts: dict[str, int],
    multi: bool,
    label: str = "validation accuracy",
    budget: int | None = None,
) -> dict:
    """Write every PNG of PLOTS; a plot that cannot be drawn becomes a figure saying why.
    `label` names the study's metric; `budget` is its max_params, marked on the front."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    view = view_study(runs)
    makers: dict[str, Callable[[], Any]] = {
        "optimization-history.png": lambda: _figure(lambda: ovm.plot_optimization_history(view)),
        "param-importances.png": lambda: _importances_with_counts(runs),
        "parallel-coordinate.png": lambda: _plot_parallel(runs, label=label),
        "lr-momentum.png": lambda: _plot_lr_momentum(runs),
        "learning-curves.png": lambda: _plot_curves(runs, top=TOP_CURVES, multi=multi, label=label),
        "trial-states.png": lambda: _plot_states(counts),
        "pareto.png": lambda: _plot_pareto(runs, label=label, budget=budget),
    }
    notes = {}
    for filename, title in PLOTS:
        try:
            fig = makers[filename]()
        except Exception as e:  # noqa: BLE001 - one plot must not sink the report; say why
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            notes[filename] = f"not drawn: {reason}"
            fig = _placeholder(title, notes[filename])
        if filename == "parallel-coordinate.png":
            fig.set_size_inches(12, 6)  # one axis per hyperparameter: give the labels room
        fig.savefig(out / filename, dpi=90, bbox_inches="tight")
        plt.close(fig)
    return notes
