"""docker-compose.yml, checked without a Docker engine (none can run here): every ``SRE_KB_*``
variable it sets is a setting the service reads (a typo would be silently ignored), and the
``cluster`` profile starts three Qdrant nodes in cluster mode that join node 1."""

from pathlib import Path

import yaml
from srekb.retrieval.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_sets_only_real_settings_and_a_three_node_cluster(monkeypatch):
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    fields = {f"SRE_KB_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        unknown = {k for k in service.get("environment", {}) if k.startswith("SRE_KB_")} - fields
        assert not unknown, f"{name} sets {unknown}, which no setting reads"

    nodes = [n for n, s in services.items() if "cluster" in s.get("profiles", []) and s.get("image", "").startswith("qdrant/")]
    assert len(nodes) == 3
    for n in nodes:
        service = services[n]
        assert service["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert f"http://{n}:6335" in service["command"]
        assert n == "qdrant-node-1" or service["command"][service["command"].index("--bootstrap") + 1] == "http://qdrant-node-1:6335"
    assert len({str(services[n]["volumes"]) for n in nodes}) == 3  # each node its own storage

    api = services["api-cluster"]
    assert api["environment"]["SRE_KB_QDRANT_URL"].startswith("http://qdrant-node-1:")
    for k, v in api["environment"].items():  # read as the service reads them: from its environment
        if k.startswith("SRE_KB_") and "${" not in v:
            monkeypatch.setenv(k, v)
    settings = Settings()
    assert settings.qdrant_replicas and settings.qdrant_shards and settings.qdrant_shards % len(nodes) == 0
    assert settings.qdrant_write_consistency <= settings.qdrant_replicas
