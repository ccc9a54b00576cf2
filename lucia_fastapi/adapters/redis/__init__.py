"""Redis stores (redis-py's asyncio client): ``pip install 'lucia_fastapi[redis]'``."""
