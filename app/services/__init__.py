"""Use cases that join the store, the core adapters and the queue."""
