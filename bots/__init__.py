"""The built-in bots. Each is one class implementing spotbot.bot.Bot."""
