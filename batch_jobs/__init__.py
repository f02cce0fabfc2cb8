"""The Spot worker: one child of the AWS Batch array job tags one shard (`python -m batch_jobs.worker`)."""
