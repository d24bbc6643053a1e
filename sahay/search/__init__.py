"""Vector and text search that the knowledge base and the case library share: embeddings and the index."""
