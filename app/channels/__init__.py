"""Messaging channels: verify, decrypt, dedupe and acknowledge; then hand work to tasks."""
