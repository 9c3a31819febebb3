"""The models sre-kb runs: the dense encoder, BM25 sparse vectors, and the one language-model seam."""
