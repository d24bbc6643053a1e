"""The cited knowledge base: curated articles and the user's documents, searched by BM25 and embeddings."""
