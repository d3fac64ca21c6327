"""Who may change things, and the record of what they changed.

- ``users``: staff accounts (the admin pages' sign-in), passwords hashed;
- ``apikeys``: keys for machine clients (the tool API, /dify, /v1), stored hashed;
- ``audit``: the audit log, one row per change to the knowledge base or the accounts.
"""
