"""``Auth(adapter, user_type=Member)``: the ``transform_user`` that a user class implies, so an app declares its
user type once.

The class says which keyword arguments it takes, read by duck typing so that the core imports no model library:

- a Pydantic model: its ``model_fields`` (each passed under its alias when it has one, as the constructor wants);
- a dataclass: its ``dataclasses.fields`` that ``__init__`` takes;
- any other class: its constructor's keyword parameters (``**kwargs`` takes every column).

The user's id is passed as ``user_id``, so the class must take one; every other field is read from the user's
column of the same name. Columns the class does not declare are left out; a required field with no column is a
``TypeError`` naming the field, raised when a user is read (the class and the tables disagree, a deployment mistake
no request can fix).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lucia_fastapi.core.models import User

__all__ = ["user_factory"]

T = TypeVar("T")

ID_FIELD = "user_id"


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    """One constructor argument: the column it is read from, the keyword it is passed as, whether it has no
    default."""

    column: str
    keyword: str
    required: bool


def _declared_fields(user_type: type[Any]) -> tuple[list[_Field], bool]:
    """The fields ``user_type`` declares, and whether it also takes any other keyword (``**kwargs``)."""
    model_fields = getattr(user_type, "model_fields", None)
    if isinstance(model_fields, Mapping):  # Pydantic v2, found by its shape rather than by importing it
        return [_pydantic_field(name, info) for name, info in model_fields.items()], False
    if dataclasses.is_dataclass(user_type):
        return [_dataclass_field(field) for field in dataclasses.fields(user_type) if field.init], False
    return _signature_fields(user_type)


def _pydantic_field(name: str, info: Any) -> _Field:
    alias = getattr(info, "alias", None)
    # The constructor takes a field by its alias (by name only with populate_by_name): the alias always works.
    keyword = alias if isinstance(alias, str) and alias else name
    is_required = getattr(info, "is_required", None)
    return _Field(name, keyword, bool(is_required()) if callable(is_required) else True)


def _dataclass_field(field: dataclasses.Field[Any]) -> _Field:
    no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    return _Field(field.name, field.name, no_default)


def _signature_fields(user_type: type[Any]) -> tuple[list[_Field], bool]:
    try:
        signature = inspect.signature(user_type)
    except (TypeError, ValueError) as error:  # some builtins and extension types have none
        raise TypeError(f"user_type={user_type.__qualname__}: cannot tell which arguments it takes") from error
    fields: list[_Field] = []
    takes_any = False
    for parameter in signature.parameters.values():
        required = parameter.default is inspect.Parameter.empty
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_any = True
        elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY and required:
            raise TypeError(
                f"user_type={user_type.__qualname__}: its argument {parameter.name!r} is positional-only; "
                "Auth builds users with keyword arguments"
            )
        elif parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            fields.append(_Field(parameter.name, parameter.name, required))
    return fields, takes_any


def user_factory(user_type: type[T]) -> Callable[[User], T]:
    """The ``transform_user`` for ``user_type``: ``user_type(user_id=..., <column>=...)`` with the columns it
    declares. ``TypeError`` now if it is not a class or takes no ``user_id``."""
    if not isinstance(user_type, type):
        raise TypeError(f"user_type must be a class (a dataclass, a Pydantic model...), not {user_type!r}")
    name = user_type.__qualname__
    fields, takes_any = _declared_fields(user_type)
    id_field = next((field for field in fields if field.column == ID_FIELD), None)
    if id_field is None and not takes_any:
        raise TypeError(f"user_type={name} must declare a {ID_FIELD!r} field: Auth passes the user's id as {ID_FIELD}")
    id_keyword = id_field.keyword if id_field is not None else ID_FIELD
    # Worked out once: every request that reads its user goes through transform.
    columns = [field for field in fields if field.column != ID_FIELD]
    required = frozenset(field.column for field in columns if field.required)
    declared = frozenset(field.column for field in fields)

    def transform(user: User) -> T:
        attributes = user.attributes
        missing = sorted(required.difference(attributes))
        if missing:
            raise TypeError(
                f"user_type={name} requires the field {', '.join(map(repr, missing))} but the user has no such"
                f" column (its columns: {', '.join(sorted(attributes)) or 'none'}): add the column to the user"
                " table or give the field a default"
            )
        values = {field.keyword: attributes[field.column] for field in columns if field.column in attributes}
        if takes_any:
            values.update((column, value) for column, value in attributes.items() if column not in declared)
        values[id_keyword] = user.user_id
        return user_type(**values)

    transform.__name__ = transform.__qualname__ = f"to_{user_type.__name__.lower()}"
    transform.__doc__ = f"Builds a {name} from the user's id and the columns it declares (Auth(user_type={name}))."
    return transform
