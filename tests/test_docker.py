"""docker/: the image, compose file and Kubernetes example parse, and run real fsearch commands.

No Docker engine runs here; these checks keep the files consistent with the CLI: every
`fsearch` command they run exists and every option they pass is one that command takes.
"""

from __future__ import annotations

import re
import shlex

import typer
import yaml

from search.cli import app
from tests.helpers import ROOT

DOCKER = ROOT / "docker"


def cli_commands() -> dict[str, set[str]]:
    """Registered subcommands and the option names each accepts."""
    group = typer.main.get_command(app)
    return {
        name: {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
        for name, cmd in group.commands.items()
    }


def check_args(args: list[str]) -> None:
    """args as passed to the `fsearch` entry point: a command, then its options."""
    commands = cli_commands()
    name = args[0]
    assert name in commands, f"fsearch has no command {name!r}"
    for token in args[1:]:
        if token.startswith("-"):
            option = token.split("=", 1)[0]
            assert option in commands[name], f"`fsearch {name}` has no option {option}"


def test_dockerfile_runs_fsearch_and_installs_the_data():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["fsearch"\]', text, re.M)
    assert "dataset-fashion-mnist" in text and "FSEARCH_DATA_DIR" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M), "the image should not run as root"
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _ = shlex.split(line)
        for src in sources:
            assert list(ROOT.glob(src)), f"COPY source {src} is missing from the repository"
    assert ".[s3]" in text and "s3 = " in (ROOT / "pyproject.toml").read_text()


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_services():
    services = compose()["services"]
    assert {"postgres", "worker", "dashboard"} <= set(services)
    pg = services["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "ports" not in pg, "the database should not be published on the host"
    worker = services["worker"]
    assert "replicas" not in worker.get("deploy", {}), "workers are scaled with --scale"
    assert worker["environment"]["FSEARCH_STORAGE"].startswith("postgresql+psycopg://")
    assert worker["environment"]["FSEARCH_WORKER"] == "auto"
    # Published on the host's loopback only, unless someone edits it on purpose.
    assert all(p.startswith("127.0.0.1:") for p in services["dashboard"]["ports"])
    for name in ("worker", "dashboard"):
        command = services[name]["command"]
        assert not any("postgresql" in c for c in command), "URLs (passwords) go by env"


def test_compose_worker_command_exists_and_runs_one_worker_process_per_replica():
    command = compose()["services"]["worker"]["command"]
    check_args(command)
    assert command[command.index("--jobs") + 1] == "1"  # replicas are the workers


def test_compose_dashboard_command_exists_and_is_read_only():
    command = compose()["services"]["dashboard"]["command"]
    assert command[:3] == ["dashboard", "--host", "0.0.0.0"]
    assert "--read-only" in command  # reachable beyond this machine once `ports` is edited
    check_args(command)


def k8s_docs() -> list[dict]:
    return [d for d in yaml.safe_load_all((DOCKER / "k8s" / "fsearch.yaml").read_text()) if d]


def test_k8s_indexed_job_of_one_process_workers_and_postgres_service():
    docs = k8s_docs()
    kinds = {d["kind"] for d in docs}
    assert {"Job", "Service", "Deployment", "PersistentVolumeClaim"} <= kinds
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    check_args(container["args"])
    assert container["args"][container["args"].index("--jobs") + 1] == "1"  # pods are workers
    env = {e["name"]: e for e in container["env"]}
    assert "job-completion-index" in str(env["FSEARCH_WORKER"])
    assert "secretKeyRef" in str(env["DB_PASSWORD"])
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert "fsearch-postgres" in env["FSEARCH_STORAGE"]["value"]


def test_the_image_user_owns_the_artifacts_folder_and_base_images_are_pinned():
    text = (DOCKER / "Dockerfile").read_text()
    user = re.search(r"^USER (\w+)", text, re.M).group(1)
    assert re.search(rf"mkdir -p /artifacts.*\n?.*chown -R {user} .*/artifacts", text)
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim", text, re.M), "pin a patch release"
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", compose()["services"]["postgres"]["image"])
    job = next(d for d in k8s_docs() if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001


def test_compose_has_no_default_database_password():
    text = (DOCKER / "compose.yaml").read_text()
    assert "${FSEARCH_DB_PASSWORD:?" in text and ":-" not in text
