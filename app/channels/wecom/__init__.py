"""WeCom (企业微信) self-built app channel: the same pipeline as the Official Account,
with WeCom's always-encrypted callback (receiveid = CorpID) and its message/send API."""
