"""Knowledge base adapter: parse documents, chunk them, embed them and search them in Milvus.

Modules: sources (files -> Document), chunking (Document -> Chunk), embedding (text ->
vectors), store (Milvus collection and search), ingest (folder -> collection). Import the
module you need; this package imports nothing heavy by itself.
"""
