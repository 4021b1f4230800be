"""deploy/ (issue 18): the Kubernetes manifests validate against the Kubernetes schemas (kubernetes-validate, the
1.30 API, strict: no unknown fields), and say what the platform needs to run as it claims — every service, the
relay and the scheduler as their own Deployments with resource requests, probes where the process serves HTTP,
a PodDisruptionBudget each, no secret in the repository, NATS as a 3-node JetStream StatefulSet.

The overlays use only what is resolved here — `namespace`, `images`, `replicas` and a `configMapGenerator` merge —
so each overlay's output is built by `render` below and validated the same way (the kustomize and helm binaries
are not installable on this machine; `kubectl kustomize deploy/overlays/production` gives the same objects).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VERSION = "1.30.0"
SERVICES = {"portal": 8000, "smarttab": 8001, "device-auth": 8002, "console": 8003}
WORKERS = ("relay", "scheduler")


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    kustomization = load(DEPLOY / "base" / "kustomization.yaml")[0]
    docs = [doc for name in kustomization["resources"] for doc in load(DEPLOY / "base" / name)]
    for generator in kustomization.get("configMapGenerator", []):
        data = dict(literal.split("=", 1) for literal in generator["literals"])
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return kustomization, docs


def render(overlay: str) -> list[dict[str, Any]]:
    """The overlay's objects: the base with its namespace, image tags, replica counts and config literals."""
    kustomization = load(DEPLOY / "overlays" / overlay / "kustomization.yaml")[0]
    assert kustomization["resources"] == ["../../base"]
    unknown = set(kustomization) - {"apiVersion", "kind", "namespace", "resources", "images", "replicas",
                                    "configMapGenerator"}  # fmt: skip
    assert not unknown, f"render() does not resolve {unknown}: extend it, or the test proves nothing about them"
    docs = copy.deepcopy(base()[1])
    tags = {image["name"]: image["newTag"] for image in kustomization.get("images", [])}
    counts = {r["name"]: r["count"] for r in kustomization.get("replicas", [])}
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name in counts:
        assert ("Deployment", name) in names or ("StatefulSet", name) in names, f"replicas of unknown {name}"
    for doc in docs:
        doc["metadata"]["namespace"] = kustomization["namespace"]
        if doc["kind"] in ("Deployment", "StatefulSet"):
            doc["spec"]["replicas"] = counts.get(doc["metadata"]["name"], doc["spec"]["replicas"])
            for container in doc["spec"]["template"]["spec"]["containers"]:
                image, _, _ = container["image"].partition(":")
                if image in tags:
                    container["image"] = f"{image}:{tags[image]}"
        if doc["kind"] == "ConfigMap":
            for generator in kustomization.get("configMapGenerator", []):
                if generator["name"] == doc["metadata"]["name"]:
                    assert generator.get("behavior") == "merge", "an overlay merges into the base's generator"
                    doc["data"].update(dict(literal.split("=", 1) for literal in generator["literals"]))
    return docs


def validated(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)


def of(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_base_validates_against_the_kubernetes_schemas() -> None:
    _, docs = base()
    validated(docs)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "PodDisruptionBudget", "StatefulSet", "ConfigMap"}


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_each_overlay_renders_to_valid_objects(overlay: str) -> None:
    docs = render(overlay)
    validated(docs)
    assert {d["metadata"]["namespace"] for d in docs} == {f"smartpos-{overlay}"}
    config = of(docs, "ConfigMap")["smartpos-config"]["data"]
    assert config["SMARTPOS_ENV"] == overlay
    if overlay == "production":
        assert config["SMARTPOS_PGW_MODE"] == "http"  # production refuses the mock gateway anyway
        assert of(docs, "Deployment")["portal"]["spec"]["replicas"] == 4


def test_every_process_type_runs_as_its_own_deployment_with_what_it_needs() -> None:
    _, docs = base()
    deployments, budgets, services = of(docs, "Deployment"), of(docs, "PodDisruptionBudget"), of(docs, "Service")
    assert set(deployments) == set(SERVICES) | set(WORKERS)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2, name  # every process type is safe with several
        assert name in budgets, f"{name} has no PodDisruptionBudget"
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert container["securityContext"]["runAsNonRoot"] is True
        assert {"configMapRef": {"name": "smartpos-config"}} in container["envFrom"]
        assert {"secretRef": {"name": "smartpos-secrets"}} in container["envFrom"]
        if name in SERVICES:
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert services[name]["spec"]["ports"][0]["port"] == SERVICES[name]
            assert str(SERVICES[name]) in container["command"]
    assert deployments["relay"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "portal.relay"
    scheduler = deployments["scheduler"]["spec"]["template"]["spec"]["containers"][0]
    assert scheduler["livenessProbe"]["httpGet"]["path"] == "/metrics"


def test_nats_is_a_three_node_jetstream_cluster() -> None:
    _, docs = base()
    nats = of(docs, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    conf = of(docs, "ConfigMap")["nats-config"]["data"]["nats.conf"]
    assert "jetstream" in conf and conf.count("nats://nats-") == 3
    assert of(docs, "PodDisruptionBudget")["nats"]["spec"]["maxUnavailable"] == 1


def test_no_secret_is_in_the_repository() -> None:
    for path in DEPLOY.rglob("*.yaml"):
        docs = load(path)
        assert not any(d.get("kind") == "Secret" or "secretGenerator" in d for d in docs), path
        text = path.read_text().lower()
        for marker in ("password", "whsec_", "begin private key", "postgresql://"):
            assert marker not in text, f"{path} mentions {marker}"
