"""WeChat Official Account channel: everything of this channel is in this folder.

controller.py  the /wechat callback: verify, decrypt, route, answer the request
delivery.py    what the reply to one callback is, in async or passive reply mode
passive.py     passive mode: answers carried by callback replies, claimed exactly once
typing.py      the "typing…" indicator while the model writes (async mode)
api.py         the Official Account API (customer-service send, typing, media/get)
tokens.py      the access token, shared by all processes (WeCom's holder too)
security.py    signatures, timestamps, AES and safe XML (WeCom's callback uses them too)
split.py       an answer cut into pieces WeChat accepts
"""
