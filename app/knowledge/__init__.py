"""The knowledge base: documents parsed, chunked, embedded and searched in Milvus, and the
documents' life in the database around it.

The adapter: sources (files -> Document; formats and validation behind it), chunking
(Document -> Chunk), embedding (text -> vectors), store (the Milvus collection and search:
`KnowledgeStore`, assembled from connection, schema, aliases, writes, reads and search;
the hybrid ranking in fusion), ingest (folder -> collection, without the database).

The use cases, on the documents table: documents (upload, replace, delete, the records),
indexing (one version into the collection; lost indexing tasks re-queued), folder
(`flask kb ingest`: KNOWLEDGE_DIR through the documents table), lookup (hit testing for
the staff console and `flask kb search`), reindex (the blue/green rebuild).

Import the module you need; this package imports nothing heavy by itself.
"""
