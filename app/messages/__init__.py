"""A customer message's life, from intake to its answer, exactly once, whichever channel
it came by (the channels in app/channels/ verify, decrypt and parse; from the plain
fields on, everything is here):

- ``intake``: taking in one verified message: ``routing`` decides what it needs (a
  question, a picture to read, an event, something unsupported), ``inbound`` stores it
  once (keyed by the channel's MsgId, so a retry stores and queues nothing),
  ``admission`` applies the per-customer rate limit and flood protection;
- ``spool``: verified messages kept on local disk while the database is down;
- ``answering``: answering a stored message exactly once (claimed with ``claims``' lease,
  stored before it is sent, each piece marked sent); ``images``: questions asked with a
  picture, read by OCR; ``voice``: questions asked by voice, transcribed here (app/speech/);
- ``sweeper``: messages nobody is working on, queued again (``queued``: which ones the
  broker still holds a task for);
- ``waiting``: telling a customer whose question waits in a backlog that it is coming.
"""
