"""What customers asked and what they got, for the staff: the unanswered questions grouped
by meaning (``unanswered``), from which staff write FAQ entries (app/faq/editing.py)."""
