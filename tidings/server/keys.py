"""Typed keys of the aiohttp application."""

from aiohttp import web

from tidings.node import Node
from tidings.server.origin import OriginPolicy

NODE = web.AppKey("node", Node)
ORIGINS = web.AppKey("origins", OriginPolicy)
