"""Executors run a job's steps: `base` states the contract, `process` runs host processes."""
