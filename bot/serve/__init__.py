"""``newsqa serve``: the Telegram bot, the feed scheduler, the refresher and health checks in one process."""
