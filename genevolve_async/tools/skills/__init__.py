"""Packaged skill guidance texts returned by the query_knowledge tool."""
