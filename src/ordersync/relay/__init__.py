"""The outbox relay: delivers committed events to the configured sinks."""
