"""A simulated SmartPOS terminal, built on the public API only (httpx and PyJWT): what a partner's POS software
does, written so a partner can read it as an example.

    key = DeviceKey.generate()                     # the terminal's EC P-256 key; only the public JWK leaves it
    device = register(auth_url, operator_token, merchant_id, store_id, "till 1", key)
    till = Terminal(portal_url, auth_url, device["id"], key)
    order = till.ring_up([("prd_…", 2)])
    till.pay(till.bill(order)["id"], 900, "card")

See `scenarios.py` for whole scripted days (card, cash, split tender, refund, void, offline and forward, shift).
"""

from .device import DeviceFile, DeviceKey, register
from .terminal import Terminal, TerminalError

__all__ = ["DeviceFile", "DeviceKey", "Terminal", "TerminalError", "register"]
