"""schemathesis against the served OpenAPI spec (real uvicorn, real model and engine): no 5xx.

Bounded: a fixed number of examples per operation and no deadline per example."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from srekb.ingest.pipeline import Ingestor
from srekb.retrieval.kb import KnowledgeBase
from srekb.retrieval.store import EdgeStore

from tests.api.test_http import Server, app_with


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory, real_embedder, settings):
    tmp = tmp_path_factory.mktemp("fuzz")
    root = tmp / "allowed"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "disk.md").write_text("# Disk full\n\n## Mitigation\n\nDelete old WAL segments.\n")
    store = EdgeStore(tmp / "store", real_embedder.dim, real_embedder.name)
    s = settings.model_copy(update={"store": tmp / "store", "model_cache": tmp / "cache", "allowed_roots": [root]})
    Ingestor(store, real_embedder, s).run([root])
    kb = KnowledgeBase(s, store=store, embedder=real_embedder)
    with Server(app_with(s, kb)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")
    store.close()


def test_no_server_errors(live_schema):
    """Every operation of the served spec, 15 generated requests each: no 5xx and no crash."""
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/ask", "/v1/search", "/v1/ingest", "/v1/sources", "/v1/jobs/{job_id}"}
    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def run(case):
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        run()
