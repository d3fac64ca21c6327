"""Local chat model through llama.cpp.

- ``engine``: the model in this process (llama.cpp), ``batching``: answers decoded
  together in its slots, ``models``: `flask model pull` and the model files;
- ``generation``: what the model does for the API (chat streams, budgeted answers),
  where the model lives; ``jobs``: running those where the model lives (the llm worker,
  or the web process) and streaming their events back.
"""
