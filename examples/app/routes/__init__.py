"""One router per flow; ``main.py`` includes each with one line."""
