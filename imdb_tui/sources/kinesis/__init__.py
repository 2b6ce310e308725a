"""Amazon Kinesis: a stream as a source (every shard, resumed from checkpoints),
and a stream as where `imdb-tui produce --to kinesis://STREAM` puts events.

A shard's checkpoint is the sequence number of the last record handed out from
it; the pipeline commits it with the batch holding that record, so a restart
carries on after it and stores exactly the records not stored yet. A shard made
by a resharding is read once its parents are read to their end, so a user's
events (one partition key: one shard at a time) stay in order.

Region, credentials and endpoint come from the standard AWS configuration (the
environment, ~/.aws, an instance role; AWS_ENDPOINT_URL for a local endpoint).
boto3 is imported only when a kinesis:// URL is used (`pip install 'imdb-tui[aws]'`).

The package: `client` (the AWS client and its errors), `shards` (reading a
stream's shards), `leases` (sharing them in a consumer group), `sink` (produce).
"""

from imdb_tui.sources.kinesis.shards import DEFAULT_GROUP, LEASE_SECONDS, KinesisSource
from imdb_tui.sources.kinesis.sink import KinesisSink

__all__ = ["DEFAULT_GROUP", "LEASE_SECONDS", "KinesisSink", "KinesisSource"]
