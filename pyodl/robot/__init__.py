"""Robot Framework keyword library driving the pyodl firmware on any Board backend."""
