"""FAQ answers by meaning: which entry a customer's question is, and how sure we are.

- ``table``: every FAQ entry and the vectors of its questions, in memory, in every process
  that answers (web processes answer at once, workers before the model);
- ``matching``: the evidence for the best entry and what it allows: the stored answer
  verbatim, the model answering from that entry, or nothing;
- ``judge``: the model asked once, yes or no, whether an entry answers the question (a
  prefill, no generation), before leaning on that entry instead of handing off;
- ``calibration``: the thresholds derived from labelled questions for an embedding model;
- ``instant``: FAQ answers in the web process, the reply to the channel's first request;
- ``commands``: the `flask faq` commands.
"""
