"""sre-kb: grounded answers with exact citations from runbooks, incidents, configs and docs.

    from srekb import KnowledgeBase
    kb = KnowledgeBase.open(".srekb")
    answer = kb.ask("etcd has no leader, what do I check?")
    print(answer.text, answer.citation_block, sep="\\n\\n")

The four parts install under this one name: ``srekb.retrieval`` (the core library, the whole
public surface is re-exported here), ``srekb.ingest``, ``srekb.api`` and ``srekb.eval``. They
live in four top-level folders of the repository (the architecture); ``pyproject.toml`` maps
them here so that a user's own ``api`` or ``eval`` package cannot shadow ours.
"""

from srekb.retrieval import *  # noqa: F403
from srekb.retrieval import __all__  # noqa: F401
