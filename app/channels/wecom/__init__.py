"""WeCom (企业微信) self-built app channel: the same pipeline as the Official Account,
with WeCom's always-encrypted callback (receiveid = CorpID) and its message/send API.

controller.py  the /wecom callback: URL check, decrypt, take in; FAQ hits as passive replies
api.py         WeCom's API (gettoken, message/send, media/get)

Signatures, AES and the shared token are the Official Account's (app/channels/wechat/).
"""
