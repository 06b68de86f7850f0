"""docker/k8s/*.yaml against the Kubernetes API schema (kubernetes-validate bundles the schemas:
no cluster and no network needed), strict (an unknown field is an error, not ignored), and
the proxy manifests' commands against the CLI."""

from __future__ import annotations

import copy
import os

import pytest
import yaml

from tests.helpers import ROOT
from tests.test_docker import check_args

try:
    import kubernetes_validate as kv
except ImportError:  # the dev extra installs it; CI must run these tests, not skip them
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        raise
    pytest.skip("kubernetes-validate is missing: pip install -e '.[dev]'", allow_module_level=True)

K8S = ROOT / "docker" / "k8s"
# The oldest Kubernetes release still supported upstream when this was written, and the
# newest the installed validator knows: the manifests must hold for both.
VERSIONS = ("1.30.0", kv.latest_version())


def documents() -> list[tuple[str, dict]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_manifest_matches_the_api_schema(name, doc, version):
    kv.validate(doc, version, strict=True)


def test_the_validator_rejects_what_the_api_server_would():
    deployment = next(d for n, d in documents() if n.endswith("Deployment/fsearch-proxy"))
    bad = copy.deepcopy(deployment)
    bad["spec"]["replicas"] = "one"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, VERSIONS[0], strict=True)
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["argz"] = ["proxy"]
    with pytest.raises(kv.ValidationError):
        kv.validate(typo, VERSIONS[0], strict=True)


def test_proxy_manifests_run_real_commands_and_workers_reach_the_proxy_service():
    docs = dict(documents())
    proxy = docs["fsearch-proxy.yaml:Deployment/fsearch-proxy"]
    (container,) = proxy["spec"]["template"]["spec"]["containers"]
    check_args(container["args"])
    assert container["args"][0] == "proxy"
    service = docs["fsearch-proxy.yaml:Service/fsearch-proxy"]
    assert service["spec"]["type"] == "ClusterIP"
    port = service["spec"]["ports"][0]["port"]
    job = docs["fsearch-proxy.yaml:Job/fsearch-workers-proxy"]
    (worker,) = job["spec"]["template"]["spec"]["containers"]
    check_args(worker["args"])
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["FSEARCH_STORAGE"] == f"grpc://fsearch-proxy:{port}"
    # The NetworkPolicy admits exactly the pods the Job makes.
    policy = docs["fsearch-proxy.yaml:NetworkPolicy/fsearch-proxy"]
    admitted = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert admitted.items() <= job["spec"]["template"]["metadata"]["labels"].items()
