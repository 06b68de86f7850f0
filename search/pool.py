"""`--jobs N`: N `fsearch run` worker processes on this machine share the study; this process
creates it once, shows the one bar (fed from the storage) and collects their exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search import cpus, outcomes, restarts, workers
from search import storage as st
from search.errors import StudyInterrupted, WorkerFailed
from search.local import warm_start
from search.metrics import of_study
from search.planning import Plan

if TYPE_CHECKING:
    import optuna


def run_workers(plan: Plan) -> tuple[optuna.Study, bool, dict[str, int]]:
    """--jobs N: N `fsearch run` worker processes here share the study; one bar for all."""
    from search import devices, studies
    from search.progress import RunProgress

    cfg, opts, out = plan.config, plan.options, plan.console
    # Create (or check) the study once here, so the workers only join it.
    study, created = studies.create_or_load_study(
        plan.storage, cfg, allow_space_change=opts.allow_space_change
    )
    st.fail_stale_trials(study)
    warm_start(plan, study)
    already = outcomes.count_finished(study)
    # No more workers than trials left: a worker with nothing to run would start TensorFlow
    # only to exit, and hold cores the ones that train could use (`--jobs auto`, the default,
    # with `--trials 1`: one worker of 2 threads, not 2 of one).
    jobs = max(1, min(opts.jobs, plan.trials - already))
    threads = cpus.threads_per_worker(jobs)
    plan.events.emit(
        "study",
        f"study {cfg.study.name} ({'new' if created else 'resumed'}) on {plan.masked}: "
        f"{already}/{plan.trials} finished; {jobs} worker{'s' if jobs > 1 else ''}, "
        f"{threads} {devices.backend()} thread{'s' if threads > 1 else ''} each",
        study=cfg.study.name,
        created=created,
        finished=already,
        target=plan.trials,
        workers=jobs,
    )
    # The workers print only trial lines; this bar is fed from the storage.
    with (
        RunProgress(
            out,
            events=plan.events,
            deadline=plan.deadline,
            target=plan.trials,
            already=already,
            best=None,
            metric=of_study(study),
        ) as bar,
        bar.following(study),
    ):
        codes = workers.run_local_workers(
            opts.worker_args(config=plan.config_path, trials=plan.trials),
            jobs=jobs,
            base_worker=plan.worker,
            env={
                st.ENV_STORAGE: plan.url,
                workers.ENV_NO_BAR: "1",
                # The config as this process read it, whatever happens to the file meanwhile.
                restarts.ENV_CONFIG: plan.config_text,
            },
            # The workers' own lines (their trial lines): text only, as they printed them.
            echo=plan.events.line("trial"),
        )
    counts = outcomes.count_outcomes(study.get_trials(deepcopy=False))
    finished = outcomes.finished(counts)
    plan.events.emit(
        "done",
        f"done: {finished}/{plan.trials} finished ({outcomes.summary(counts)}); "
        f"workers exited {codes}",
        finished=finished,
        target=plan.trials,
        counts=dict(counts),
        exit_codes=list(codes),
    )
    if 130 in codes:
        raise StudyInterrupted(finished, plan.trials)
    if any(codes):
        raise WorkerFailed(codes)
    return study, created, counts
