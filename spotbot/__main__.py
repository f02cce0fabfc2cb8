from spotbot.cli import app

app(prog_name="spotbot")
