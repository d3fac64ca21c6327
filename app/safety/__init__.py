"""Protections applied to every customer message: rate limits (and later PII masking,
sensitive words)."""
