"""The staff console's HTTP side: the /admin pages (pages.py), sign-in and the session
cookie (auth.py), the JSON APIs the pages call (/api/knowledge: knowledge.py, /api/apikeys:
apikeys.py, /api/unanswered: unanswered.py, /api/faq: faq.py, /api/conversations:
conversations.py, /api/handoffs: handoffs.py) and their cross-site request checks
(csrf.py). The last four also take an API key (Bearer) for scripts and Dify workflows,
working as staff; keys and users are managed by admins signed in."""
