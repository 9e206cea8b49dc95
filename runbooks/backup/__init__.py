"""Backup and recovery (operations guide chapter): Prometheus TSDB snapshots, the Thanos blocks
bucket, OpenSearch snapshots, log-index cleanup and restore drills; with the preconditions the
backup and restore runbooks share (bucket_checks, opensearch_checks, tsdb_checks).

Runbooks: backup-tsdb, restore-tsdb, backup-bucket, restore-bucket, backup-opensearch,
restore-opensearch, cleanup-log-indices, verify-backups.
"""
