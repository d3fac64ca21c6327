"""Knowledge base adapter: parse documents, chunk them, embed them and search them in Milvus.

Modules: sources (files -> Document), chunking (Document -> Chunk), embedding (text ->
vectors), store (the Milvus collection and search: `KnowledgeStore`, assembled from
connection, schema, aliases, writes, reads and search; the hybrid ranking in fusion),
ingest (folder -> collection). Import the module you need; this package imports nothing
heavy by itself.
"""
