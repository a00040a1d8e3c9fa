"""Typed keys of the aiohttp application."""

from aiohttp import web

from tidings.node import Node

NODE = web.AppKey("node", Node)
