"""Use cases: each one transaction, each idempotent."""
