"""What an operator runs labci with: Prometheus metrics, readiness, structured logs."""
