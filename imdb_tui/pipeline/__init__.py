"""The pipeline: source -> bounded queue -> validate, dedupe, batch -> store.

- settings.py: what a pipeline is asked to do (PipelineSettings) and its RunSummary;
- producer.py: reading the source at the target rate or a replay's pace;
- consumer.py: validating, batching, committing in order;
- stats.py: counts, the measured rate and the lag;
- runner.py: the Pipeline that joins them, with its controls, retention and health.
"""

from imdb_tui.pipeline.pacer import Pacer
from imdb_tui.pipeline.runner import Pipeline
from imdb_tui.pipeline.settings import MAX_RATE, MIN_RATE, PipelineSettings, RunSummary

__all__ = ["MAX_RATE", "MIN_RATE", "Pacer", "Pipeline", "PipelineSettings", "RunSummary"]
