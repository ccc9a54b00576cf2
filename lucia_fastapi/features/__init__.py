"""Account flows, each a package of its own that composes ``Auth`` with a store protocol of its own."""
