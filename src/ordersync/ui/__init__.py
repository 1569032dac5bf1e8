"""The console: staff screens served by the hub at /ui/ (an adapter, like the API). Routes
call the services and the named read models in db/; templates only show what they are given.
"""

from .app import Console, install_console

__all__ = ["Console", "install_console"]
