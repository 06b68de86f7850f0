"""Devices and `--jobs auto`: GPU detection, each worker's share of GPUs and cores, with fake
GPU lists and core counts (no GPU needed), and the --jobs option end to end in the CLI."""

from __future__ import annotations

import json
import os

import pytest

from search import devices, workers
from search.api import RunOptions
from search.devices import Gpu
from search.errors import ConfigError
from tests.helpers import invoke

H200 = [Gpu(0, "NVIDIA H200", "GPU-aaa", 143771)]
FOUR = [Gpu(i, "NVIDIA A100-SXM4-80GB", f"GPU-{i}", 81920) for i in range(4)]


def test_nvidia_smi_output_is_parsed_and_junk_skipped():
    text = (
        "0, NVIDIA H200, GPU-aaa, 143771\n"
        "1, NVIDIA A100-SXM4-80GB, GPU-bbb, [N/A]\n"
        "No devices were found\n"
    )
    assert devices.parse_nvidia_smi(text) == [
        Gpu(0, "NVIDIA H200", "GPU-aaa", 143771),
        Gpu(1, "NVIDIA A100-SXM4-80GB", "GPU-bbb", 0),
    ]
    assert devices.parse_nvidia_smi("") == []


def test_gpus_are_asked_of_nvidia_smi_and_none_without_it(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA H200, GPU-aaa, 143771'\n")
    smi.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    devices._nvidia_smi.cache_clear()
    try:
        assert devices.detect_gpus() == H200
        assert workers.auto_jobs(n_cores=16) == 8
        devices._nvidia_smi.cache_clear()
        smi.unlink()
        assert devices.detect_gpus() == []
    finally:
        devices._nvidia_smi.cache_clear()


@pytest.mark.parametrize(
    ("visible", "indices"),
    [(None, [0, 1, 2, 3]), ("2,0", [2, 0]), ("GPU-3", [3]), ("", []), ("-1", []), ("1,9,2", [1])],
)
def test_cuda_visible_devices_narrows_the_gpus_as_cuda_does(visible, indices):
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert [g.index for g in devices.visible(FOUR, environ)] == indices


def test_workers_spread_over_the_gpus_and_share_their_memory():
    envs = [devices.worker_env(k, 6, FOUR, {}) for k in range(6)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2", "3", "0", "1"]
    assert {e["CUDA_DEVICE_ORDER"] for e in envs} == {"PCI_BUS_ID"}
    # GPUs 0 and 1 hold two workers each, 2 and 3 one: JAX's cap is the worker's share.
    assert [e["XLA_PYTHON_CLIENT_MEM_FRACTION"] for e in envs] == [
        "0.450", "0.450", "0.900", "0.900", "0.450", "0.450"
    ]  # fmt: skip
    assert all(e["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for e in envs)
    assert all(e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for e in envs)


def test_eight_workers_on_one_gpu_each_get_an_eighth():
    envs = [devices.worker_env(k, 8, H200, {}) for k in range(8)]
    assert {e["CUDA_VISIBLE_DEVICES"] for e in envs} == {"0"}
    assert {e["XLA_PYTHON_CLIENT_MEM_FRACTION"] for e in envs} == {"0.113"}


def test_no_gpu_means_no_gpu_variables_and_the_users_memory_settings_are_kept():
    assert devices.worker_env(0, 2, [], {}) == {}
    user = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2", "TF_FORCE_GPU_ALLOW_GROWTH": "false"}
    env = devices.worker_env(1, 2, FOUR, user)
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env and "TF_FORCE_GPU_ALLOW_GROWTH" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "1"


def test_child_env_gives_each_worker_its_gpu_and_its_cores(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    envs = [workers.child_env(10 + k, 2, slot=k, jobs=3, gpus=FOUR[:2]) for k in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert [e[workers.ENV_CPUS] for e in envs] == ["0,1", "2,3", "0,1"]
    assert [e[workers.ENV_WORKER] for e in envs] == ["10", "11", "12"]
    # Without GPUs nothing GPU-related is set (a CPU machine's environment stays as it was).
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    cpu = workers.child_env(0, 1, slot=1, jobs=2)
    assert "CUDA_VISIBLE_DEVICES" not in cpu and "XLA_PYTHON_CLIENT_PREALLOCATE" not in cpu
    assert cpu[workers.ENV_CPUS] == "1"


def test_the_users_cuda_visible_devices_is_respected(monkeypatch):
    """The user's set is the one spread over, in the user's order."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    gpus = devices.visible(FOUR)
    envs = [workers.child_env(k, 1, slot=k, jobs=4, gpus=gpus) for k in range(4)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["3", "1", "3", "1"]


def test_cpu_share_wraps_around_when_workers_outnumber_cores():
    assert workers.cpu_share(0, 1, [0, 1]) == [0]
    assert workers.cpu_share(3, 1, [0, 1]) == [1]
    assert workers.cpu_share(1, 4, [4, 5, 6, 7, 8, 9, 10, 11]) == [8, 9, 10, 11]
    assert workers.cpu_share(0, 8, [0, 1]) == [0, 1]


def test_keras_backend_is_read_as_keras_reads_it(tmp_path):
    assert devices.backend({"KERAS_BACKEND": "jax"}) == "jax"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert devices.backend({"KERAS_HOME": str(tmp_path)}) == "torch"
    assert devices.backend({"KERAS_HOME": str(tmp_path / "none")}) == "tensorflow"


def test_describe_names_a_gpu_by_its_machine_number_and_a_cpu_by_its_threads(monkeypatch):
    environ = {"CUDA_VISIBLE_DEVICES": "3"}
    assert devices.describe_device("gpu", "NVIDIA H200", environ=environ) == "gpu:3 NVIDIA H200"
    assert devices.describe_device("gpu", "NVIDIA H200", environ={}) == "gpu:0 NVIDIA H200"
    assert devices.describe_device("cpu", environ={"FSEARCH_TF_THREADS": "1"}) == "cpu (1 thread)"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert devices.describe_device("cpu", environ={}) == "cpu (2 threads)"


def test_describe_asks_the_backend_and_finds_the_cpu_here(monkeypatch):
    """The test machines have no GPU. JAX: the backend quickest to ask."""
    pytest.importorskip("jax")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("FSEARCH_TF_THREADS", "1")
    devices.describe.cache_clear()
    try:
        assert devices.describe() == "cpu (1 thread)"
    finally:
        devices.describe.cache_clear()


# ---------------------------------------------------------------------------- --jobs auto


@pytest.mark.parametrize(
    ("cores", "gpus", "jobs"),
    [
        (1, 0, 1),
        (2, 0, 2),  # BENCHMARKS.md `workers`: 2 workers on 2 cores, 1.63x the trials/hour
        (16, 0, 2),  # more than 2 CPU workers: not measured yet
        (16, 1, 8),  # issue 12's anchor: 8 workers on one H200 with 16 cores
        (16, 4, 16),  # at most one worker per core
        (4, 1, 4),
    ],
)
def test_auto_jobs_rule(cores, gpus, jobs):
    assert workers.auto_jobs(n_cores=cores, n_gpus=gpus) == jobs


def test_jobs_auto_resolves_once_when_the_options_are_made(monkeypatch):
    calls = []
    monkeypatch.setattr(workers, "auto_jobs", lambda: calls.append(1) or 3)
    opts = RunOptions.of(jobs="auto")
    assert opts.jobs == 3 and calls == [1]
    assert RunOptions.of(opts, trials=5).jobs == 3 and calls == [1]
    assert RunOptions.of(jobs="2").jobs == 2 and RunOptions().jobs == 1


@pytest.mark.parametrize("bad", ["banana", "0", "-1", "2.5", 0, 2.5, True])
def test_bad_jobs_are_a_config_error(bad):
    with pytest.raises(ConfigError, match="--jobs must be a whole number >= 1 or 'auto'"):
        RunOptions.of(jobs=bad)


def test_cli_accepts_jobs_auto(monkeypatch):
    from search import api

    seen = {}
    monkeypatch.setattr(workers, "auto_jobs", lambda: 5)
    monkeypatch.setattr(api, "run", lambda config, options, console: seen.setdefault("o", options))
    r = invoke("run", "--jobs", "auto", "--trials", 3)
    assert r.exit_code == 0, r.output
    assert seen["o"].jobs == 5 and seen["o"].trials == 3


def test_cli_run_defaults_to_jobs_auto_reads_fsearch_jobs_and_the_flag_wins_over_it(
    monkeypatch,
):
    """conftest sets FSEARCH_JOBS=1 for the suite; without it `fsearch run` means --jobs auto."""
    from search import api

    seen = []
    monkeypatch.setattr(workers, "auto_jobs", lambda: 5)
    monkeypatch.setattr(api, "run", lambda config, options, console: seen.append(options.jobs))
    monkeypatch.delenv("FSEARCH_JOBS")
    assert invoke("run", "--trials", 3).exit_code == 0
    monkeypatch.setenv("FSEARCH_JOBS", "1")
    assert invoke("run", "--trials", 3).exit_code == 0
    assert invoke("run", "--trials", 3, "--jobs", 2).exit_code == 0
    assert seen == [5, 1, 2]


def test_jobs_workers_are_started_with_jobs_1_whatever_fsearch_jobs_says(monkeypatch):
    """A worker's own command line says --jobs 1, which wins over FSEARCH_JOBS in its env."""
    from search import api

    args = RunOptions.of(jobs=2).worker_args(config=None, trials=4)
    assert args[args.index("--jobs") + 1] == "1"
    seen = []
    monkeypatch.setattr(api, "run", lambda config, options, console: seen.append(options.jobs))
    monkeypatch.setenv("FSEARCH_JOBS", "3")
    assert invoke(*args).exit_code == 0 and seen == [1]


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "100000 100000\n"}, 1.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({}, None),
        ({"cpu.max": "garbage\n"}, None),
        # v2 is read first: a v1 file beside it (a hybrid host) does not count.
        (
            {
                "cpu.max": "max 100000\n",
                "cpu/cpu.cfs_quota_us": "100000\n",
                "cpu/cpu.cfs_period_us": "100000\n",
            },
            None,
        ),  # fmt: skip
        (
            {
                "cpu.max": "300000 100000\n",
                "cpu/cpu.cfs_quota_us": "100000\n",
                "cpu/cpu.cfs_period_us": "100000\n",
            },
            3.0,
        ),  # fmt: skip
    ],
)
def test_cgroup_cpu_quota_reads_v2_then_v1(tmp_path, files, quota):
    from search.cpus import cgroup_cpu_quota

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(str(tmp_path), str(tmp_path / "no-proc")) == quota


def test_cgroup_cpu_quota_is_the_tightest_from_this_process_cgroup_up_to_the_root(tmp_path):
    from search.cpus import cgroup_cpu_quota

    for folder, text in [("", "max 100000"), ("a", "100000 100000"), ("a/b", "200000 100000")]:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "cpu.max").write_text(text + "\n")
    proc = tmp_path / "self-cgroup"
    proc.write_text("0::/a/b\n")
    assert cgroup_cpu_quota(str(tmp_path), str(proc)) == 1.0
    proc.write_text("0::/\n")  # a container's own namespace: its root is its cgroup
    assert cgroup_cpu_quota(str(tmp_path), str(proc)) is None


def test_cores_is_capped_by_a_containers_cpu_quota(monkeypatch):
    from search import cpus

    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda: 1.5)
    assert cpus.cores() == 1 and workers.auto_jobs(n_gpus=0) == 1
    monkeypatch.setattr(cpus, "cgroup_cpu_quota", lambda: None)
    assert cpus.cores() == 4 and workers.auto_jobs(n_gpus=0) == 2


def test_a_start_up_line_every_worker_prints_is_shown_once_and_later_lines_always():
    lines = []
    show = workers.shown_once(lines.append)
    for i, text in [
        (0, "t.csv: 400 rows"),
        (1, "t.csv: 400 rows"),  # the same start-up line: left out
        (1, "#0    COMPLETE"),
        (0, "#1    PRUNED"),
        (0, "restarting this worker"),
        (1, "restarting this worker"),  # after their first trial: both show
        (1, "t.csv: 400 rows"),
    ]:
        show(i, text)
    assert lines == [
        "w0 | t.csv: 400 rows",
        "w1 | #0    COMPLETE",
        "w0 | #1    PRUNED",
        "w0 | restarting this worker",
        "w1 | restarting this worker",
        "w1 | t.csv: 400 rows",
    ]


def test_cli_refuses_a_bad_jobs_value_in_one_line(workdir):
    r = invoke("run", "--jobs", "banana")
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "error: --jobs must be a whole number >= 1 or 'auto', got 'banana'"
    ]
    assert not (workdir / "studies").exists()
