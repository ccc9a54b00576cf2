"""Account flows built on ``Auth``: each a package of its own (tokens, email, oauth, mfa)."""
