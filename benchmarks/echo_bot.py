"""The baseline: a minimal aiogram bot with one handler that answers every message.

It runs against the same fake Bot API server as the bot, in the same benchmark run,
so the bot's figures can be read as "aiogram and HTTP alone" plus what the bot adds.
It uses the bot's client settings (aiohttp session, HTML parse mode) and event loop
(uvloop), and nothing else.

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT python benchmarks/echo_bot.py
"""

from __future__ import annotations

import gc
import html
import os

import uvloop
from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import Message


async def echo(message: Message) -> None:
    await message.answer(html.escape(message.text or "…"))


async def main() -> None:
    router = Router(name="echo")
    router.message.register(echo)
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(
        token=os.environ["BOT_TOKEN"],
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    gc.freeze()  # as bot.py does once started: full collections skip the imports
    await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=True)


if __name__ == "__main__":
    uvloop.run(main())  # the bot's event loop, as bot.py runs it
