"""No Docker engine runs here: the compose file and Dockerfiles are validated by parsing them."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_compose_services_ports_env_and_gpu_reservations() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "migrate", "worker-gpu0", "worker-gpu1", "redis", "postgres", "s3", "flower", "reconciler"} <= set(
        services
    )
    assert services["api"]["ports"] == ["8000:8000"] and services["flower"]["ports"] == ["5555:5555"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"api", "flower"}, "S3, Prometheus and metrics ports stay on the compose network"
    assert services["migrate"]["command"] == ["omnimedia", "db", "upgrade"] and services["migrate"]["restart"] == "no"
    device_ids = []
    for name in ("worker-gpu0", "worker-gpu1"):
        service = services[name]
        env = service["environment"]
        assert env["OMNIMEDIA_MODE"] == "celery" and env["OMNIMEDIA_BROKER_URL"].startswith("redis://redis:")
        assert env["OMNIMEDIA_DATABASE_URL"].startswith("postgresql://") and env["OMNIMEDIA_STORAGE_BACKEND"] == "s3"
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
        device_ids += device["device_ids"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert sorted(device_ids) == ["0", "1"], "one worker service per GPU"
    assert "--queues" in services["worker-gpu1"]["command"] and "talker" in services["worker-gpu1"]["command"]
    queues_of = {name: s["command"][s["command"].index("--queues") + 1] for name, s in services.items()
                 if isinstance(s.get("command"), list) and "--queues" in s["command"]}  # fmt: skip
    (webhook_service,) = [name for name, queues in queues_of.items() if "webhooks" in queues.split(",")]
    assert "deploy" not in services[webhook_service], "webhook delivery never runs on a GPU worker"
    assert all("webhooks" not in queues_of[name] for name in ("worker-gpu0", "worker-gpu1"))
    for dockerfile in ("Dockerfile", "Dockerfile.cuda", "Dockerfile.vllm"):
        text = (REPO / "infra" / dockerfile).read_text()
        assert text.startswith("#") and "FROM " in text and "COPY models models" in text
    s3_config = compose["configs"]["s3-identities"]["content"]
    assert "${S3_ACCESS_KEY:?" in s3_config and "${S3_SECRET_KEY:?" in s3_config
    scrape = yaml.safe_load((REPO / "infra" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert {"api:8000", "worker-gpu0:9100", "worker-gpu1:9100"} <= targets
    (api_job,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "omnimedia-api"]
    assert api_job["authorization"]["credentials_file"] == "/etc/prometheus/admin-token"


def test_no_default_secrets_in_deployment_files() -> None:
    """Every secret compose uses is required from the environment (`${VAR:?...}`): none has a default, none is
    written in the repository, and Flower's password is passed by environment, never on a command line."""
    import re

    text = (REPO / "docker-compose.yml").read_text()
    for name in ("POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY", "OMNIMEDIA_ADMIN_TOKEN", "FLOWER_PASSWORD"):
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)
    compose = yaml.safe_load(text)
    assert all("basic-auth" not in " ".join(s.get("command", [])) for s in compose["services"].values())
    assert "FLOWER_BASIC_AUTH" in compose["services"]["flower"]["environment"]
    for path in (REPO / "infra").iterdir():
        assert "change-me" not in path.read_text(errors="replace"), path


def test_every_long_running_service_restarts_and_redis_keeps_its_queue() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, service in services.items():
        expected = "no" if name == "migrate" else "unless-stopped"
        restart = service.get("restart") or compose.get("x-worker", {}).get("restart")
        assert restart == expected, name
    assert services["redis"]["command"][-4:] == ["--appendonly", "yes", "--appendfsync", "everysec"]
    assert "--appendonly yes --appendfsync everysec" in (REPO / "infra" / "services.sh").read_text()
