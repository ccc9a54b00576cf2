"""The MFA feature's SQL store: TOTP secrets (encrypted), recovery-code digests, passkeys and passkey ceremony
challenges, on PostgreSQL or SQLite through SQLAlchemy's async engine.

``define_mfa_tables(metadata)`` adds the four tables to an app's metadata (the default ``metadata`` has them);
migration ``0006`` creates them. Every deciding write is one conditional statement (compare-and-set), so
concurrent requests cannot both spend the same code, step, counter or challenge.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.features.mfa.store import ChallengeRow, PasskeyRow, TotpRow

_StoredRow = TypeVar("_StoredRow", TotpRow, PasskeyRow)  # the rows read back with _from_columns


@dataclass(frozen=True, slots=True)
class MFATables:
    """The four MFA tables of one ``MetaData``."""

    totp: Table
    recovery_code: Table
    passkey: Table
    challenge: Table


def define_mfa_tables(metadata: MetaData, *, user_table: str = "auth_user") -> MFATables:
    """Define ``auth_totp``, ``auth_recovery_code``, ``auth_passkey`` and ``auth_webauthn_challenge`` on
    ``metadata``; rows go with their user (``ON DELETE CASCADE``)."""
    user_fk = f"{user_table}.id"
    totp = Table(
        "auth_totp",
        metadata,
        Column("user_id", String(255), ForeignKey(user_fk, ondelete="CASCADE"), primary_key=True),
        Column("encrypted_secret", Text, nullable=False),  # SecretCipher token (Fernet), never the secret
        Column("confirmed", Boolean, nullable=False),
        Column("last_used_step", BigInteger, nullable=True),  # newest accepted 30 s step: no replay
        Column("created_at", BigInteger, nullable=False),
    )
    recovery_code = Table(
        "auth_recovery_code",
        metadata,
        Column("user_id", String(255), ForeignKey(user_fk, ondelete="CASCADE"), nullable=False),
        Column("digest", String(64), nullable=False),  # hex SHA-256 of an 80-bit code
        PrimaryKeyConstraint("user_id", "digest"),
    )
    passkey = Table(
        "auth_passkey",
        metadata,
        Column("credential_id", String(1400), primary_key=True),  # base64url of up to 1023 bytes
        Column("user_id", String(255), ForeignKey(user_fk, ondelete="CASCADE"), nullable=False),
        Column("name", String(64), nullable=False),
        Column("public_key", LargeBinary, nullable=False),  # COSE
        Column("sign_count", BigInteger, nullable=False),
        Column("transports", String(255), nullable=False),  # comma-separated
        Column("backed_up", Boolean, nullable=False),
        Column("created_at", BigInteger, nullable=False),
        Column("last_used_at", BigInteger, nullable=True),
        Index(None, "user_id"),
    )
    challenge = Table(
        "auth_webauthn_challenge",
        metadata,
        Column("id", String(64), primary_key=True),  # hex SHA-256 of the browser's ceremony token
        Column("purpose", String(16), nullable=False),
        Column("challenge", String(128), nullable=False),
        Column("user_id", String(255), ForeignKey(user_fk, ondelete="CASCADE"), nullable=True),
        Column("session_digest", String(64), nullable=True),
        Column("expires_at", BigInteger, nullable=False),
        Index(None, "expires_at"),
    )
    return MFATables(totp=totp, recovery_code=recovery_code, passkey=passkey, challenge=challenge)


@contextmanager
def _database_errors() -> Iterator[None]:
    """The adapter's translation of driver errors (imported late: ``schema`` imports this module)."""
    from lucia_fastapi.adapters.sqlalchemy.adapter import _database_errors as translate

    with translate():
        yield


class _Conflict(Exception):
    """An insert met an existing row (or a missing user)."""


class SQLAlchemyMFAStore:
    """``MFAStore`` on the app's SQL database. ``tables`` default to those of the default ``metadata``."""

    def __init__(self, engine: AsyncEngine, tables: MFATables | None = None) -> None:
        if tables is None:
            from lucia_fastapi.adapters.sqlalchemy.schema import default_mfa_tables

            tables = default_mfa_tables
        self.engine = engine
        self.tables = tables
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    # TOTP
    async def get_totp(self, user_id: str) -> TotpRow | None:
        t = self.tables.totp
        row = await self._first(select(t).where(t.c.user_id == user_id))
        return _totp_row(row) if row is not None else None

    async def set_pending_totp(self, row: TotpRow) -> bool:
        t = self.tables.totp
        for _ in range(2):  # a concurrent enrolment may slip in between: then try once more
            try:
                with _database_errors():
                    try:
                        async with self.engine.begin() as conn:
                            await conn.execute(delete(t).where(t.c.user_id == row.user_id, t.c.confirmed.is_(False)))
                            await conn.execute(insert(t).values(_totp_values(row, confirmed=False)))
                    except IntegrityError as error:
                        raise _Conflict from error
                return True
            except _Conflict:
                current = await self.get_totp(row.user_id)
                if current is not None and current.confirmed:
                    return False
                if current is None and await self._user_missing(row.user_id):
                    raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r}") from None
        return False

    async def confirm_totp(self, user_id: str, encrypted_secret: str, step: int) -> bool:
        t = self.tables.totp
        statement = (
            update(t)
            .where(t.c.user_id == user_id, t.c.confirmed.is_(False), t.c.encrypted_secret == encrypted_secret)
            .values(confirmed=True, last_used_step=step)
        )
        return await self._write(statement) == 1

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        t = self.tables.totp
        statement = (
            update(t)
            .where(
                t.c.user_id == user_id,
                t.c.confirmed.is_(True),
                or_(t.c.last_used_step.is_(None), t.c.last_used_step < step),
            )
            .values(last_used_step=step)
        )
        return await self._write(statement) == 1

    async def replace_totp_secret(self, user_id: str, old: str, new: str) -> bool:
        t = self.tables.totp
        statement = update(t).where(t.c.user_id == user_id, t.c.encrypted_secret == old).values(encrypted_secret=new)
        return await self._write(statement) == 1

    async def get_totp_rows(self, *, after: str | None, limit: int) -> list[TotpRow]:
        t = self.tables.totp
        statement = select(t).order_by(t.c.user_id).limit(limit)
        if after is not None:
            statement = statement.where(t.c.user_id > after)
        return [_totp_row(row) for row in await self._all(statement)]

    async def delete_totp(self, user_id: str) -> bool:
        t = self.tables.totp
        return await self._write(delete(t).where(t.c.user_id == user_id)) > 0

    # Recovery codes
    async def replace_recovery_codes(self, user_id: str, digests: Sequence[str]) -> None:
        r = self.tables.recovery_code
        with _database_errors():
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(delete(r).where(r.c.user_id == user_id))
                    if digests:
                        await conn.execute(insert(r), [{"user_id": user_id, "digest": d} for d in set(digests)])
            except IntegrityError:
                raise LuciaError("AUTH_INVALID_USER_ID", f"no user {user_id!r}") from None

    async def use_recovery_code(self, user_id: str, digest: str) -> bool:
        r = self.tables.recovery_code
        return await self._write(delete(r).where(r.c.user_id == user_id, r.c.digest == digest)) == 1

    async def count_recovery_codes(self, user_id: str) -> int:
        r = self.tables.recovery_code
        row = await self._first(select(func.count()).select_from(r).where(r.c.user_id == user_id))
        return int(row[0]) if row is not None else 0

    async def delete_recovery_codes(self, user_id: str) -> None:
        r = self.tables.recovery_code
        await self._write(delete(r).where(r.c.user_id == user_id))

    # Passkeys
    async def add_passkey(self, row: PasskeyRow) -> None:
        from lucia_fastapi.adapters.sqlalchemy.adapter import _insert_one

        values = {**asdict(row), "transports": ",".join(row.transports)}
        error = await _insert_one(self._autocommit, self.tables.passkey, values)
        if error is not None:
            if "foreign key" in str(error.orig).lower():
                raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r}") from None
            raise LuciaError("MFA_ALREADY_ENROLLED", "this passkey is registered already") from None

    async def get_passkey(self, credential_id: str) -> PasskeyRow | None:
        p = self.tables.passkey
        row = await self._first(select(p).where(p.c.credential_id == credential_id))
        return _passkey_row(row) if row is not None else None

    async def get_passkeys(self, user_id: str) -> list[PasskeyRow]:
        p = self.tables.passkey
        statement = select(p).where(p.c.user_id == user_id).order_by(p.c.created_at, p.c.credential_id)
        return [_passkey_row(row) for row in await self._all(statement)]

    async def update_passkey_use(self, credential_id: str, old_count: int, new_count: int, used_at: int) -> bool:
        p = self.tables.passkey
        statement = (
            update(p)
            .where(p.c.credential_id == credential_id, p.c.sign_count == old_count)
            .values(sign_count=new_count, last_used_at=used_at)
        )
        return await self._write(statement) == 1

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        p = self.tables.passkey
        statement = update(p).where(p.c.credential_id == credential_id, p.c.user_id == user_id).values(name=name)
        return await self._write(statement) == 1

    async def delete_passkey(self, user_id: str, credential_id: str) -> bool:
        p = self.tables.passkey
        return await self._write(delete(p).where(p.c.credential_id == credential_id, p.c.user_id == user_id)) == 1

    # Both
    async def has_second_factor(self, user_id: str) -> bool:
        t, p = self.tables.totp, self.tables.passkey
        statement = select(
            or_(
                exists().where(t.c.user_id == user_id, t.c.confirmed.is_(True)),
                exists().where(p.c.user_id == user_id),
            )
        )
        row = await self._first(statement)
        return bool(row[0]) if row is not None else False

    async def delete_all(self, user_id: str) -> None:
        with _database_errors():
            async with self.engine.begin() as conn:
                for table in (self.tables.totp, self.tables.recovery_code, self.tables.passkey, self.tables.challenge):
                    await conn.execute(delete(table).where(table.c.user_id == user_id))

    # Challenges
    async def set_challenge(self, row: ChallengeRow) -> None:
        from lucia_fastapi.adapters.sqlalchemy.adapter import _insert_one

        if await _insert_one(self._autocommit, self.tables.challenge, asdict(row)) is not None:
            raise LuciaError("AUTH_INVALID_USER_ID", f"no user {row.user_id!r}") from None

    async def take_challenge(self, challenge_id: str) -> ChallengeRow | None:
        c = self.tables.challenge
        statement = delete(c).where(c.c.id == challenge_id).returning(*c.c)
        with _database_errors():
            async with self._autocommit.connect() as conn:
                row = (await conn.execute(statement)).first()
        if row is None:
            return None
        return ChallengeRow(
            id=row.id,
            purpose=row.purpose,
            challenge=row.challenge,
            user_id=row.user_id,
            session_digest=row.session_digest,
            expires_at=row.expires_at,
        )

    async def delete_expired_challenges(self, now: int) -> int:
        c = self.tables.challenge
        return await self._write(delete(c).where(c.c.expires_at <= now))

    # Plumbing
    async def _user_missing(self, user_id: str) -> bool:
        user = self.tables.totp.c.user_id.foreign_keys
        target = next(iter(user)).column.table
        return await self._first(select(target.c.id).where(target.c.id == user_id)) is None

    async def _first(self, statement: Any) -> Any:
        with _database_errors():
            async with self._autocommit.connect() as conn:
                return (await conn.execute(statement)).first()

    async def _all(self, statement: Any) -> Sequence[Any]:
        with _database_errors():
            async with self._autocommit.connect() as conn:
                return (await conn.execute(statement)).all()

    async def _write(self, statement: Any) -> int:
        with _database_errors():
            async with self._autocommit.connect() as conn:
                return int((await conn.execute(statement)).rowcount)


# The tables' columns are named as the rows' fields: a row is written with ``asdict`` and read back field by field.
# Only what a column stores differently is spelled out (transports as one comma-separated string; a driver may
# give booleans as integers and binary as memoryview).


def _totp_values(row: TotpRow, *, confirmed: bool) -> Mapping[str, Any]:
    return {**asdict(row), "confirmed": confirmed}


def _from_columns(kind: type[_StoredRow], row: Any, **stored_differently: Any) -> _StoredRow:
    columns = row._mapping
    return kind(**{field.name: columns[field.name] for field in fields(kind)} | stored_differently)


def _totp_row(row: Any) -> TotpRow:
    return _from_columns(TotpRow, row, confirmed=bool(row.confirmed))


def _passkey_row(row: Any) -> PasskeyRow:
    transports = tuple(t for t in row.transports.split(",") if t)
    return _from_columns(
        PasskeyRow, row, public_key=bytes(row.public_key), transports=transports, backed_up=bool(row.backed_up)
    )
