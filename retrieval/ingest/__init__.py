"""Getting articles in: files, web pages and feeds, cleaned and split into passages."""
