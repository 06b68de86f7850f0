"""A run in this process: open (or create) the study, warm-start it, run the search loop with
the bar, restart the process every N trials when it may, and say how it went."""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING

from search import cpus, outcomes, restarts, runner, workers
from search import storage as st
from search.errors import StudyInterrupted
from search.events import Events
from search.metrics import of_study
from search.planning import Plan
from search.studies import best_trial

if TYPE_CHECKING:
    import optuna

WARM_START_TRIALS = 10  # --warm-start queues this many of the other study's best trials


def run_here(plan: Plan) -> tuple[optuna.Study, bool, dict[str, int]]:
    """The search in this process; the study may be shared with workers elsewhere."""
    from search._tf import import_tensorflow
    from search.artifacts import keeper
    from search.devices import describe
    from search.objective import Objective
    from search.progress import RunProgress

    cfg, opts, out = plan.config, plan.options, plan.console
    study, created = open_study(plan)
    already = outcomes.count_finished(study)
    say_header(plan, created, already)
    best = None
    with contextlib.suppress(ValueError):
        best = study.best_value
    import_tensorflow(quiet=not opts.debug)
    cpus.apply_thread_limits()
    objective = Objective(
        cfg, plan.split, keep=keeper(plan.store, k=cfg.study.keep_models), device=describe()
    )
    warm_start(plan, study)
    waiting = []

    def on_wait(finished: int, running: int) -> None:
        if not waiting:
            plan.events.emit(
                "waiting",
                f"waiting for {running} running trial(s) of other workers ({finished} done)",
                running=running,
                finished=finished,
            )
        waiting.append(running)

    started = workers.run_started(already)  # the first start's, across worker restarts
    progress = RunProgress(
        out,
        events=plan.events,
        deadline=plan.deadline,
        target=plan.trials,
        already=already,
        best=best,
        started=started,
        show=not os.environ.get(workers.ENV_NO_BAR),
        metric=of_study(study),
    )
    with workers.interrupts_caught(workers.stop_grace()) as interrupted:
        try:
            with progress as bar:
                loop = runner.run_study(
                    study,
                    objective,
                    cfg,
                    n_trials=plan.trials,
                    timeout=plan.timeout,
                    on_trial=bar.on_trial,
                    on_wait=on_wait,
                    stop_requested=interrupted.is_set,
                    max_trials_here=plan.restart_every,
                )
        except KeyboardInterrupt:
            raise StudyInterrupted(outcomes.count_finished(study), plan.trials) from None
    if loop.recycle and not interrupted.is_set():  # a stop Python dropped is still a stop
        plan.events.emit(
            "restart",
            f"restarting this worker after {loop.ran} trials to release TensorFlow's memory",
            trials=loop.ran,
        )
        restarts.restart_process()
    counts = outcomes.count_outcomes(study.get_trials(deepcopy=False))
    say_done(plan.events, study, counts, loop, plan.trials, time.time() - started[0])
    return study, created, counts


def say_header(plan: Plan, created: bool, already: int) -> None:
    cfg, split = plan.config, plan.split
    plan.events.emit(
        "study",
        f"study {cfg.study.name} ({'new' if created else 'resumed'}) on {plan.masked}: "
        f"{already}/{plan.trials} finished; sampler {cfg.study.sampler}, pruner "
        f"{cfg.study.pruner}; {len(split.y_train):,} train / {len(split.y_val):,} validation "
        + ("rows" if cfg.data.source else "images"),
        study=cfg.study.name,
        created=created,
        finished=already,
        target=plan.trials,
    )


def say_done(
    events: Events, study, counts: dict[str, int], loop, target: int, seconds: float
) -> None:
    """seconds: since this run first started (a worker restart every N trials included; the
    loop's own seconds are only those since the last restart)."""
    best = best_trial(study)
    metric = of_study(study)
    events.emit(
        "done",
        f"done: {loop.finished}/{target} finished ({outcomes.summary(counts)}) in "
        f"{seconds:.0f} s this run; "
        + (
            f"best {metric.name} {metric.format(best.value)} (trial #{best.number})"
            if best is not None
            else "no completed trial yet"
        ),
        finished=loop.finished,
        target=target,
        counts=dict(counts),
        seconds=seconds,
        best_trial=None if best is None else best.number,
        best_value=None if best is None else best.value,
    )
    if loop.finished < target:
        events.emit(
            "stopped_early",
            f"stopped early (timeout); run the same command again to reach {target}",
            finished=loop.finished,
            target=target,
        )


def open_study(plan: Plan) -> tuple[optuna.Study, bool]:
    """The study with this process's sampler, dead workers' trials failed and re-queued."""
    from search import studies

    cfg = plan.config
    n_existing = 0
    if cfg.study.name in studies.study_names(plan.storage):
        n_existing = len(studies.load_study(plan.storage, cfg.study.name).trials)
    seed = runner.process_seed(cfg.study, n_existing=n_existing, worker=plan.worker)
    study, created = studies.create_or_load_study(
        plan.storage,
        cfg,
        sampler=runner.make_sampler(cfg.study, seed=seed, grid=plan.grid),
        pruner=plan.pruner,
        allow_space_change=plan.options.allow_space_change,
    )
    studies.check_split(study, plan.split)
    # Trials of workers that died (here or elsewhere) are failed and re-queued before counting.
    st.fail_stale_trials(study)
    return study, created


def warm_start(plan: Plan, study: optuna.Study) -> None:
    """--warm-start STUDY: its best configurations go first (once per study and source);
    then, with [study] first_trials, the configurations known to be good for the data (once
    per study)."""
    from search import studies
    from search.first_trials import queue_first_trials

    source = plan.options.warm_start
    if source:
        n, dropped = studies.warm_start(
            study, studies.load_study(plan.storage, source), plan.config, n=WARM_START_TRIALS
        )
        left = f" (not in this space, left to the sampler: {', '.join(dropped)})"
        plan.events.emit(
            "warm_start",
            f"warm start: {n} configuration(s) of study {source!r} queued"
            + (left if dropped else "")
            if n
            else f"warm start: study {source!r} already queued here, or has no completed trial",
            source=source,
            queued=n,
            dropped=dropped,
        )
    labels = queue_first_trials(study, plan.config, plan.split)
    if labels:
        plan.events.emit(
            "first_trials",
            f"first trials: {len(labels)} known configuration(s) queued: " + "; ".join(labels),
            labels=labels,
        )
