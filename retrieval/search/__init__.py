"""Finding passages: the vector index, the lexical index and the rules that fuse their scores."""
