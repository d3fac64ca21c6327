"""Local chat model through llama.cpp.

- ``engine``: the model in this process (llama.cpp), ``batching``: answers decoded
  together in its slots, ``models``: `flask model pull` and the model files.

What uses the model (answers, the API's generations and their jobs) lives in
app/pipeline/, so this package depends on no answering code.
"""
