"""One catalog entry: its TOML fields, merged over the catalog's files → a checked `ItemSpec`.

Every field is checked for its type, for fitting the item's type, and against the other
fields; the default must be a value the entry itself accepts. A problem is an `EntryError`
naming the field, which the catalog loader turns into a file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provd.store.itemspec import DEFAULT_SCHEMES, Access, ItemSpec, ItemType
from provd.wpi.model import Action


def known_actions() -> frozenset[str]:
    """The action names an entry's `actions` may list."""
    return frozenset(action.value for action in Action)


_BOOL_FIELDS = (
    "secret",
    "nullable",
    "indexed",
    "index_optional",
    "inventory",
    "supported",
    "certificate",
    "special",
)
_INT_FIELDS = ("min", "max", "min_length", "max_length", "min_index", "max_index", "basic")
#: The fields an entry may have.
ENTRY_FIELDS = frozenset(
    (
        *_BOOL_FIELDS,
        *_INT_FIELDS,
        "type",
        "access",
        "default",
        "exclude",
        "choices",
        "schemes",
        "actions",
        "requires",
        "description",
    )
)


class EntryError(Exception):
    """An entry's fields do not make an item; `field` names the field at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _want_bool(fields: Mapping[str, Any], key: str) -> bool:
    value = fields.get(key, key == "supported")
    if type(value) is not bool:
        raise EntryError(f"{key} must be true or false, not {value!r}", key)
    return value


def _want_int(fields: Mapping[str, Any], key: str) -> int | None:
    value = fields.get(key)
    if value is not None and type(value) is not int:
        raise EntryError(f"{key} must be an integer, not {value!r}", key)
    return value


def _want_strings(fields: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EntryError(f"{key} must be a list of strings", key)
    return tuple(value)


def _text(value: object, key: str) -> str:
    """A TOML scalar as item text: booleans as `true`/`false` (values are text, spec §2.3)."""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, str):
        return str(value)
    raise EntryError(f"{key} must be a string, an integer or a boolean, not {value!r}", key)


def build_spec(name: str, fields: Mapping[str, Any]) -> ItemSpec:
    """One checked ItemSpec from merged fields, or EntryError naming the field."""
    try:
        item_type = ItemType(fields["type"])
    except ValueError:
        known = ", ".join(t.value for t in ItemType)
        raise EntryError(f"unknown type {fields['type']!r} (known: {known})", "type") from None
    try:
        access = Access(fields.get("access", "rw"))
    except ValueError:
        raise EntryError(
            f"access must be rw, ro or wo, not {fields['access']!r}", "access"
        ) from None
    flags = {key: _want_bool(fields, key) for key in _BOOL_FIELDS}
    ints = {key: _want_int(fields, key) for key in _INT_FIELDS}
    description = fields.get("description", "")
    if not isinstance(description, str):
        raise EntryError("description must be a string", "description")
    spec = ItemSpec(
        name=name,
        type=item_type,
        access=access,
        secret=flags["secret"],
        default=None if "default" not in fields else _text(fields["default"], "default"),
        nullable=flags["nullable"],
        min=ints["min"],
        max=ints["max"],
        exclude=_exclude(fields),
        choices=_choices(fields, item_type),
        min_length=ints["min_length"],
        max_length=ints["max_length"],
        schemes=_schemes(fields, item_type),
        indexed=flags["indexed"],
        min_index=ints["min_index"] if ints["min_index"] is not None else 0,
        max_index=ints["max_index"],
        index_optional=flags["index_optional"],
        basic=ints["basic"],
        inventory=flags["inventory"],
        supported=flags["supported"],
        certificate=flags["certificate"],
        actions=_actions(fields),
        requires=_requires(fields),
        special=flags["special"],
        description=description,
    )
    _check_limits(spec, fields)
    return spec


def _exclude(fields: Mapping[str, Any]) -> tuple[int, ...]:
    value = fields.get("exclude", [])
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise EntryError("exclude must be a list of integers", "exclude")
    return tuple(value)


def _choices(fields: Mapping[str, Any], item_type: ItemType) -> tuple[str, ...]:
    value = fields.get("choices")
    if value is None:
        if item_type is ItemType.ENUM:
            raise EntryError("an enum needs choices", "choices")
        return ()
    if item_type is ItemType.ENUM:
        choices = _want_strings(fields, "choices")
    elif item_type is ItemType.INT:
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            raise EntryError("choices of an int must be integers", "choices")
        choices = tuple(str(v) for v in value)
    else:
        raise EntryError(f"choices do not apply to type {item_type.value}", "choices")
    if not choices:
        raise EntryError("choices must not be empty", "choices")
    return choices or ()


def _schemes(fields: Mapping[str, Any], item_type: ItemType) -> tuple[str, ...]:
    schemes = _want_strings(fields, "schemes")
    if schemes is None:
        return DEFAULT_SCHEMES
    if item_type is not ItemType.URI:
        raise EntryError(f"schemes do not apply to type {item_type.value}", "schemes")
    if not schemes:
        raise EntryError("schemes must not be empty", "schemes")
    return tuple(scheme.lower() for scheme in schemes)


def _actions(fields: Mapping[str, Any]) -> tuple[str, ...]:
    actions = _want_strings(fields, "actions") or ()
    unknown = [action for action in actions if action not in known_actions()]
    if unknown:
        raise EntryError(f"unknown action {unknown[0]!r} in actions", "actions")
    return actions


def _requires(fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    value = fields.get("requires", {})
    if not isinstance(value, dict):
        raise EntryError('requires must be a table such as { "goto-secure-mode" = "pin" }')
    return tuple((str(name), _text(v, "requires")) for name, v in value.items())


def _check_limits(spec: ItemSpec, fields: Mapping[str, Any]) -> None:
    """Limits that fit the type and each other, and a default the entry itself accepts."""
    # validate imports the catalog, which imports this module
    from provd.store.validate import check_value  # noqa: PLC0415

    if spec.type is not ItemType.INT:
        for key in ("min", "max", "exclude"):
            if key in fields:
                raise EntryError(f"{key} applies to int items only", key)
    if spec.min is not None and spec.max is not None and spec.min > spec.max:
        raise EntryError(f"min ({spec.min}) > max ({spec.max})", "min")
    for key in ("min_length", "max_length"):
        value = getattr(spec, key)
        if value is not None and value < 0:
            raise EntryError(f"{key} must not be negative", key)
    if (
        spec.min_length is not None
        and spec.max_length is not None
        and spec.min_length > spec.max_length
    ):
        raise EntryError(
            f"min_length ({spec.min_length}) > max_length ({spec.max_length})", "min_length"
        )
    if not spec.indexed:
        for key in ("min_index", "max_index", "index_optional"):
            if key in fields:
                raise EntryError(f"{key} applies to indexed items only", key)
    if spec.min_index < 0:
        raise EntryError("min_index must not be negative", "min_index")
    if spec.max_index is not None and spec.min_index > spec.max_index:
        raise EntryError(
            f"min_index ({spec.min_index}) > max_index ({spec.max_index})", "min_index"
        )
    if spec.basic is not None:
        if spec.basic < 1:
            raise EntryError("basic positions start at 1", "basic")
        if spec.indexed:
            raise EntryError("an indexed item cannot be basic", "basic")
        if not spec.readable:
            raise EntryError("a write-only item cannot be basic", "basic")
    if spec.default is not None and not check_value(spec, spec.default):
        raise EntryError(
            f"default {spec.default!r} is not a valid {spec.type.value} for this item", "default"
        )
