"""微信客服 (WeChat Customer Service, WeCom's ``kf`` API) channel.

Customers reach a 微信客服 account from Official Account menus, mini programs, Channels,
search, payment receipts and web pages inside WeChat. Its callback only *notifies*
(``kf_msg_or_event`` with a Token and the OpenKfId); the messages are pulled with
kf/sync_msg from a cursor kept per account. The rules, with where each was confirmed:
docs/kf-contract.md.

api.py         the kf API (gettoken, sync_msg, send_msg, send_msg_on_event, service_state,
               media/get) with WeCom's shared token and bounded retries; KfChannel, the
               ChannelAPI answering sends through
cursor.py      the cursor per open_kfid in the database, one reader per open_kfid
sync.py        every page until has_more is 0, the cursor stored before the page is taken
               in; only customers' messages (origin 3) and enter_session events come out
handoff.py     moving a session to people (service_state/trans) and "does a person hold it"
controller.py  the encrypted callback: URL check, kf_msg_or_event queued as a sync
intake.py      what becomes of each message a sync reads (the glue to app/messages), and
               the sync queued (the Celery task app.tasks.sync_kf)
fields.py      a kf message as the plain fields every channel's intake takes

Signatures and AES are WeCom's (app/channels/wechat/security.py, receiveid = CorpID).
"""

#: InboundMessage.channel of this channel's messages.
CHANNEL = "kf"

#: How often beat reads every known account again without a token (app.tasks
#: sync_kf_accounts): a safety net for lost callbacks, rare enough for WeChat's strict
#: limit on token-less sync_msg calls.
SAFETY_SYNC_EVERY_S = 300.0
