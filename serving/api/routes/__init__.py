"""Routers: each module translates HTTP for one group of routes."""
