"""The chat itself: what each websocket event and each command does.

events.py reads Chalice's event once; dispatch.py's `Chat` runs one action
per command (lifecycle, rooms, person_rooms, posting, identity; conversation
and moderation beside this package); broadcaster.py says who hears what;
chalicelib/service.py builds the graph.
"""
