"""Tools as Ollama's templates see them: ``.Tools`` of a chat template.

Ollama hands its templates typed Go structs (``templateTool`` -> ``templateToolFunction`` ->
``templateToolFunctionParameters``, whose ``Properties`` map holds ``api.ToolProperty`` values),
so ``.Function.Parameters.Required``, ``.Function.Parameters.Type`` or ``$v.Type`` and
``$v.Description`` of a property resolve by Go field name. The frozen dataclasses below play those
structs for corral's template engine: same field names, same JSON (struct tags in the fields'
``json`` metadata, map keys sorted, unknown request keys dropped), same printing (a tool, the tool
list and the properties map print as JSON; a property type prints as ``string`` or
``[string null]``).

A request's tool definition is read leniently: a value of the wrong JSON type becomes the field's
zero value instead of an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.template.gojson import marshal

__all__ = [
    "NilSlice",
    "PropertyType",
    "TemplateFunction",
    "TemplateParameters",
    "TemplateProperties",
    "TemplateTool",
    "TemplateTools",
    "ToolProperty",
    "to_template_tools",
]


def _tag(name: str) -> Any:
    """A Go struct tag for a field: ``json:"<name>"``."""
    return {"json": name}


class NilSlice(list[Any]):
    """A nil Go slice: empty, prints as ``[]``, encodes as ``null`` (an absent JSON list)."""

    def MarshalJSON(self) -> str:
        return "null"


class PropertyType(list[str]):
    """Ollama's ``api.PropertyType``: one JSON type name or several."""

    def String(self) -> str:
        if not self:
            return ""
        if len(self) == 1:
            return self[0]
        return "[" + " ".join(self) + "]"

    def MarshalJSON(self) -> str:
        if not self:
            return "null"  # no type given: a nil slice
        return marshal(self[0]) if len(self) == 1 else marshal(list(self))


class NestedProperties(dict[str, "ToolProperty"]):
    """Ollama's ``api.ToolPropertiesMap`` inside a property: JSON keeps the request's order."""

    def MarshalJSON(self) -> str:
        return "{" + ",".join(f"{marshal(k)}:{marshal(v)}" for k, v in self.items()) + "}"


class TemplateProperties(dict[str, "ToolProperty"]):
    """Ollama's ``templateProperties``: a Go map (sorted keys) that prints as JSON.

    ``nil`` stands for a tool without ``properties``: it prints as ``{}`` and encodes as ``null``.
    """

    def __init__(self, items: Mapping[str, ToolProperty] | None = None) -> None:
        super().__init__(items or {})
        self.nil = items is None

    def MarshalJSON(self) -> str:
        return "null" if self.nil else marshal(dict(self))

    def String(self) -> str:
        return "{}" if self.nil else marshal(dict(self))


@dataclass(frozen=True)
class ToolProperty:
    """Ollama's ``api.ToolProperty``."""

    AnyOf: list[ToolProperty] = field(default_factory=NilSlice, metadata=_tag("anyOf,omitempty"))
    Type: PropertyType = field(default_factory=PropertyType, metadata=_tag("type,omitempty"))
    Items: Any = field(default=None, metadata=_tag("items,omitempty"))
    Description: str = field(default="", metadata=_tag("description,omitempty"))
    Enum: list[Any] = field(default_factory=NilSlice, metadata=_tag("enum,omitempty"))
    Properties: NestedProperties | None = field(default=None, metadata=_tag("properties,omitempty"))
    Required: list[str] = field(default_factory=NilSlice, metadata=_tag("required,omitempty"))


@dataclass(frozen=True)
class TemplateParameters:
    """Ollama's ``templateToolFunctionParameters``."""

    Type: str = field(default="", metadata=_tag("type"))
    Defs: Any = field(default=None, metadata=_tag("$defs,omitempty"))
    Items: Any = field(default=None, metadata=_tag("items,omitempty"))
    Required: list[str] = field(default_factory=NilSlice, metadata=_tag("required,omitempty"))
    Properties: TemplateProperties = field(
        default_factory=TemplateProperties, metadata=_tag("properties")
    )


@dataclass(frozen=True)
class TemplateFunction:
    """Ollama's ``templateToolFunction``."""

    Name: str = field(default="", metadata=_tag("name"))
    Description: str = field(default="", metadata=_tag("description"))
    Parameters: TemplateParameters = field(
        default_factory=TemplateParameters, metadata=_tag("parameters")
    )


@dataclass(frozen=True)
class TemplateTool:
    """Ollama's ``templateTool``; prints as its JSON."""

    Type: str = field(default="", metadata=_tag("type"))
    Items: Any = field(default=None, metadata=_tag("items,omitempty"))
    Function: TemplateFunction = field(default_factory=TemplateFunction, metadata=_tag("function"))

    def String(self) -> str:
        return marshal(self)


class TemplateTools(list[TemplateTool]):
    """Ollama's ``templateTools``; prints as its JSON."""

    def String(self) -> str:
        return marshal(list(self))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    """A JSON list of strings; anything else is a nil slice."""
    if not isinstance(value, list):
        return NilSlice()
    return [v for v in value if isinstance(v, str)]


def _property_type(value: Any) -> PropertyType:
    if isinstance(value, str):
        return PropertyType([value])
    return PropertyType(_strings(value))


def _property(raw: Any) -> ToolProperty:
    spec = _mapping(raw)
    any_of = spec.get("anyOf")
    nested = spec.get("properties")
    enum = spec.get("enum")
    return ToolProperty(
        AnyOf=[_property(p) for p in any_of] if isinstance(any_of, list) else NilSlice(),
        Type=_property_type(spec.get("type")),
        Items=spec.get("items"),
        Description=_text(spec.get("description")),
        Enum=list(enum) if isinstance(enum, list) else NilSlice(),
        Properties=(
            NestedProperties((str(k), _property(v)) for k, v in nested.items())
            if isinstance(nested, Mapping)
            else None
        ),
        Required=_strings(spec.get("required")),
    )


def _parameters(raw: Any) -> TemplateParameters:
    spec = _mapping(raw)
    props = spec.get("properties")
    return TemplateParameters(
        Type=_text(spec.get("type")),
        Defs=spec.get("$defs"),
        Items=spec.get("items"),
        Required=_strings(spec.get("required")),
        Properties=TemplateProperties(
            {str(k): _property(v) for k, v in props.items()} if isinstance(props, Mapping) else None
        ),
    )


def to_template_tools(tools: Sequence[Mapping[str, Any]]) -> TemplateTools:
    """The request's tool definitions as Ollama's template structs."""
    out = TemplateTools()
    for tool in tools:
        fn = _mapping(tool.get("function"))
        out.append(
            TemplateTool(
                Type=_text(tool.get("type", "function")),
                Items=tool.get("items"),
                Function=TemplateFunction(
                    Name=_text(fn.get("name")),
                    Description=_text(fn.get("description")),
                    Parameters=_parameters(fn.get("parameters")),
                ),
            )
        )
    return out
