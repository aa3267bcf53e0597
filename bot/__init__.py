"""newsqa's front-ends: the command line and REPL, the Telegram bot, the service."""
