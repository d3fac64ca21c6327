"""The staff console's HTTP side: the /admin pages (pages.py), sign-in and the session
cookie (auth.py), the JSON APIs the pages call (/api/knowledge: knowledge.py, /api/apikeys:
apikeys.py, /api/unanswered: unanswered.py, /api/faq: faq.py) and their cross-site
request checks (csrf.py)."""
