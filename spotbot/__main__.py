from spotbot.entrypoints.cli import app

app(prog_name="spotbot")
