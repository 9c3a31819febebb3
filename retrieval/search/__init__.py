"""A search, stage by stage (``pipeline.py``), and the stages: intent, strategy, rerank, judge, linking, sections."""
