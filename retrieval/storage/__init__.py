"""Where articles, passages and their indexes live: the ``Backend`` protocol and its backends."""
