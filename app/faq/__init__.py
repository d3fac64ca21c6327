"""FAQ answers by meaning: which entry a customer's question is, and how sure we are.

- ``table``: every FAQ entry and the vectors of its questions, in memory, in every process
  that answers (web processes answer at once, workers before the model);
- ``matching``: the evidence for the best entry and what it allows: the stored answer
  verbatim, the model answering from that entry, or nothing;
- ``judge``: the model asked once, yes or no, whether an entry answers the question (a
  prefill, no generation), before leaning on that entry instead of handing off;
- ``calibration``: the thresholds derived from labelled questions for an embedding model;
- ``editing`` and ``publishing``: the entries staff write or edit on the pages (the
  faq_entries table) and how they reach the index;
- ``commands``: the `flask faq` commands.

What answers with them lives in app/pipeline/ (answer.py in the workers, instant.py in
the web process), so this package depends on no answering code.
"""
