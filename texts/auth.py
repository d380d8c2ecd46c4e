"""Texts of linking a Telegram user to the account: login, password, logout."""
