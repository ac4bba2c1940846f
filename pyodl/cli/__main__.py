from pyodl.cli.program import run

run()
