"""Tidings' benchmark suite: Tidings beside Socket.IO, python-socketio and a bare ceiling."""
