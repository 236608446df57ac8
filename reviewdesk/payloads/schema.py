"""An interrupt with a ``response_schema`` (JSON Schema): a generated form, checked on the server.

The schema becomes a tree of nodes (objects, fields, unions, JSON fallbacks), each leaf a Django
field, so a reviewer fills typed inputs instead of writing JSON. Every field is optional to
Django: which ones are required depends on the branch a reviewer picks (a ``oneOf`` variant, an
optional nested object), so requiredness is judged by ``jsonschema`` on the value actually built,
and each error is put next to the field it concerns. Anything the generator does not know how
to draw becomes a JSON box for that part alone, never an error page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from django import forms
from jsonschema.validators import validator_for

from reviewdesk.payloads import AnswerError, parse_json, pretty

MISSING: Any = object()
# Deeper schemas draw their remainder as a JSON box.
MAX_DEPTH = 6
# Text drawn as a multi-line box: by name, or when the schema allows long text.
_LONG_TEXT = re.compile(
    r"(^|_)(body|text|message|content|comment|description|notes?|reason|summary|details|"
    r"instructions|draft|prompt|answer|reply|data)$",
    re.I,
)


@dataclass
class Node:
    """One part of the form: an object (fieldset), a field, a union (variant choice) or JSON."""

    kind: str  # object | field | union | json | const
    name: str  # the form field's name (leaves) or the prefix of its children's names
    path: tuple[Any, ...]
    label: str
    help: str = ""
    required: bool = False
    schema: dict[str, Any] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    variants: list[tuple[Any, Node]] = field(default_factory=list)  # (discriminator value, object)
    discriminator: str = ""
    const: Any = None
    convert: str = ""  # how a leaf's cleaned value becomes JSON: text, lines-*, choice, json, ...
    choices: list[Any] = field(default_factory=list)
    bound: Any = None  # the BoundField, set per form instance


def resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """The schema with local $ref and single-member allOf followed."""
    seen = 0
    while isinstance(schema, dict) and seen < 20:
        seen += 1
        if isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/"):
            target: Any = root
            for part in schema["$ref"][2:].split("/"):
                target = (
                    target.get(part.replace("~1", "/").replace("~0", "~"), {})
                    if isinstance(target, dict)
                    else {}
                )
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra} if isinstance(target, dict) else {}
            continue
        if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            extra = {k: v for k, v in schema.items() if k != "allOf"}
            schema = {**resolve(schema["allOf"][0], root), **extra}
            continue
        break
    return schema if isinstance(schema, dict) else {}


def _nullable(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {"type": "null"}]`` (how Pydantic writes Optional[X]) as X."""
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and len(options) == 2:
            kept = [o for o in options if resolve(o, root).get("type") != "null"]
            if len(kept) == 1:
                rest = {k: v for k, v in schema.items() if k != key}
                return {**resolve(kept[0], root), **rest}
    return schema


def _field_name(prefix: str, key: str, taken: set[str]) -> str:
    base = f"{prefix}__{re.sub(r'[^A-Za-z0-9_-]', '_', key) or 'x'}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    taken.add(name)
    return name


def _label(key: Any, schema: dict[str, Any]) -> str:
    title = schema.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else "Answer"


def _help(schema: dict[str, Any]) -> str:
    description = schema.get("description")
    return description if isinstance(description, str) else ""


def _discriminator(options: list[dict[str, Any]], schema: dict[str, Any]) -> str:
    """The property whose constant value names each variant, if there is one."""
    named = schema.get("discriminator")
    if isinstance(named, dict) and isinstance(named.get("propertyName"), str):
        return named["propertyName"]
    if not options or not all(o.get("type") == "object" or "properties" in o for o in options):
        return ""
    common = set.intersection(*(set(o.get("properties") or {}) for o in options))
    for key in sorted(common):
        values = [_const_of(o["properties"][key]) for o in options]
        if all(v is not MISSING for v in values) and len({repr(v) for v in values}) == len(values):
            return key
    return ""


def _const_of(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return MISSING
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and len(schema["enum"]) == 1:
        return schema["enum"][0]
    return MISSING


class Builder:
    """Compiles a schema into nodes and the Django fields they draw."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.fields: dict[str, forms.Field] = {}
        self.taken: set[str] = set()

    def build(
        self,
        schema: Any,
        *,
        name: str,
        path: tuple[Any, ...],
        label: str,
        required: bool,
        initial: Any = MISSING,
        depth: int = 0,
    ) -> Node:
        schema = _nullable(resolve(schema, self.root), self.root)
        if initial is MISSING and "default" in schema:
            initial = schema["default"]
        common = {
            "name": name,
            "path": path,
            "label": _label(label, schema),
            "help": _help(schema),
            "required": required,
            "schema": schema,
        }
        const = _const_of(schema)
        if const is not MISSING:
            return Node(kind="const", const=const, **common)
        options = schema.get("oneOf") or schema.get("anyOf")
        if isinstance(options, list) and options and depth < MAX_DEPTH:
            variants = [resolve(o, self.root) for o in options]
            key = _discriminator(variants, schema)
            if key:
                return self._union(variants, key, common, initial, depth)
        kind = schema.get("type")
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._enum(schema["enum"], common, initial)
        if kind == "object" and isinstance(schema.get("properties"), dict) and depth < MAX_DEPTH:
            node = Node(kind="object", **common)
            required_keys = set(schema.get("required") or [])
            values = initial if isinstance(initial, dict) else {}
            for key, inner in schema["properties"].items():
                node.children.append(
                    self.build(
                        inner,
                        name=_field_name(name, key, self.taken),
                        path=(*path, key),
                        label=key,
                        required=key in required_keys,
                        initial=values.get(key, MISSING),
                        depth=depth + 1,
                    )
                )
            return node
        if kind == "string":
            return self._text(common, initial)
        if kind in ("integer", "number"):
            field_class = forms.IntegerField if kind == "integer" else forms.FloatField
            return self._leaf(common, field_class(required=False), initial, kind)
        if kind == "boolean":
            choices = [("", "—")] if not required else []
            choices += [("true", "Yes"), ("false", "No")]
            widget = forms.RadioSelect if required else forms.Select
            start = MISSING if initial is MISSING else ("true" if initial else "false")
            return self._leaf(
                common,
                forms.ChoiceField(choices=choices, required=False, widget=widget),
                start,
                "boolean",
                raw=True,
            )
        if kind == "array" and depth < MAX_DEPTH:
            items = _nullable(resolve(schema.get("items") or {}, self.root), self.root)
            if isinstance(items.get("enum"), list) and items["enum"]:
                node = Node(kind="field", convert="multi", choices=list(items["enum"]), **common)
                chosen = [
                    str(i)
                    for i, v in enumerate(items["enum"])
                    if isinstance(initial, list) and v in initial
                ]
                self._add(
                    node,
                    forms.MultipleChoiceField(
                        choices=[(str(i), _choice_label(v)) for i, v in enumerate(items["enum"])],
                        required=False,
                        widget=forms.CheckboxSelectMultiple,
                    ),
                    chosen or MISSING,
                )
                return node
            if items.get("type") in ("string", "integer", "number"):
                node = Node(kind="field", convert=f"lines-{items['type']}", **common)
                text = "\n".join(str(v) for v in initial) if isinstance(initial, list) else MISSING
                node.help = (node.help + "\n\n" if node.help else "") + "One per line."
                self._add(
                    node,
                    forms.CharField(
                        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3})
                    ),
                    text,
                )
                return node
        return self._json(common, initial)

    def _text(self, common: dict[str, Any], initial: Any) -> Node:
        schema = common["schema"]
        limit = schema.get("maxLength")
        named_long = bool(common["path"] and _LONG_TEXT.search(str(common["path"][-1])))
        long = (isinstance(limit, int) and limit > 200) or (
            named_long and not (isinstance(limit, int) or "format" in schema)
        )
        # A lone string answer is a reply: a box to write it in.
        long = long or not common["path"]
        widget = forms.Textarea(attrs={"rows": 4}) if long else forms.TextInput()
        return self._leaf(
            common, forms.CharField(required=False, strip=False, widget=widget), initial, "text"
        )

    def _enum(self, values: list[Any], common: dict[str, Any], initial: Any) -> Node:
        node = Node(kind="field", convert="choice", choices=list(values), **common)
        choices = [(str(i), _choice_label(v)) for i, v in enumerate(values)]
        if not common["required"]:
            choices.insert(0, ("", "—"))
        widget = forms.RadioSelect if len(values) <= 5 and common["required"] else forms.Select
        start = next((str(i) for i, v in enumerate(values) if v == initial), MISSING)
        self._add(node, forms.ChoiceField(choices=choices, required=False, widget=widget), start)
        return node

    def _union(
        self,
        variants: list[dict[str, Any]],
        key: str,
        common: dict[str, Any],
        initial: Any,
        depth: int,
    ) -> Node:
        node = Node(kind="union", discriminator=key, **common)
        chosen = initial.get(key, MISSING) if isinstance(initial, dict) else MISSING
        for n, variant in enumerate(variants):
            value = _const_of((variant.get("properties") or {}).get(key))
            inner = self.build(
                variant,
                name=f"{common['name']}__v{n}",
                path=common["path"],
                label=_choice_label(value),
                required=True,
                initial=initial if value == chosen else MISSING,
                depth=depth + 1,
            )
            node.variants.append((value, inner))
        choices = [(str(n), _label(v, variants[n])) for n, (v, _) in enumerate(node.variants)]
        start = next((str(n) for n, (v, _) in enumerate(node.variants) if v == chosen), MISSING)
        field_ = forms.ChoiceField(choices=choices, required=False, widget=forms.RadioSelect)
        self.fields[f"{common['name']}__variant"] = field_
        if start is not MISSING:
            field_.initial = start
        return node

    def _json(self, common: dict[str, Any], initial: Any) -> Node:
        node = Node(kind="field", convert="json", **common)
        widget = forms.Textarea(attrs={"rows": 4, "class": "mono"})
        text = MISSING if initial is MISSING else pretty(initial)
        node.help = (node.help + "\n\n" if node.help else "") + "As JSON."
        self._add(node, forms.CharField(required=False, strip=False, widget=widget), text)
        return node

    def _leaf(
        self,
        common: dict[str, Any],
        field_: forms.Field,
        initial: Any,
        convert: str,
        raw: bool = False,
    ) -> Node:
        node = Node(kind="field", convert=convert, **common)
        self._add(node, field_, initial)
        return node

    def _add(self, node: Node, field_: forms.Field, initial: Any) -> None:
        field_.label = node.label
        if node.required:
            field_.widget.attrs["aria-required"] = "true"
        if initial is not MISSING and initial is not None:
            field_.initial = initial
            if isinstance(field_.widget, forms.TextInput | forms.Textarea) and isinstance(
                initial, str
            ):
                # The desk.js diff reads it: what the graph proposed for this field.
                field_.widget.attrs["data-original"] = initial
            elif isinstance(initial, int | float) and not isinstance(initial, bool):
                field_.widget.attrs["data-original"] = str(initial)
        self.fields[node.name] = field_


def _choice_label(value: Any) -> str:
    return value if isinstance(value, str) else pretty(value)


def collect(node: Node, data: dict[str, Any], errors: dict[str, str]) -> Any:
    """The JSON value the nodes' cleaned fields describe; MISSING for an empty optional part."""
    if node.kind == "const":
        return node.const
    if node.kind == "object":
        value = {}
        for child in node.children:
            inner = collect(child, data, errors)
            if inner is not MISSING:
                value[child.path[-1]] = inner
        if not node.required and not any(
            c.kind != "const" and c.path[-1] in value for c in node.children
        ):
            return MISSING
        return value
    if node.kind == "union":
        choice = data.get(f"{node.name}__variant")
        if choice in (None, ""):
            return MISSING if not node.required else {}
        return collect(node.variants[int(choice)][1], data, errors)
    raw = data.get(node.name)
    if node.convert == "text":
        return MISSING if raw in (None, "") else raw
    if node.convert in ("integer", "number"):
        return MISSING if raw is None else raw
    if node.convert == "boolean":
        return MISSING if raw in (None, "") else raw == "true"
    if node.convert == "choice":
        return MISSING if raw in (None, "") else node.choices[int(raw)]
    if node.convert == "multi":
        return [node.choices[int(i)] for i in raw or []] if raw or node.required else MISSING
    if node.convert.startswith("lines-"):
        lines = [line.strip() for line in (raw or "").splitlines() if line.strip()]
        if not lines:
            return MISSING if not node.required else []
        kind = node.convert.removeprefix("lines-")
        try:
            return [
                int(x) if kind == "integer" else float(x) if kind == "number" else x for x in lines
            ]
        except ValueError:
            errors[node.name] = f"Each line must be a {kind}."
            return MISSING
    if node.convert == "json":
        if raw in (None, "") or not raw.strip():
            return MISSING
        try:
            return parse_json(raw)
        except AnswerError as exc:
            errors[node.name] = str(exc)
            return MISSING
    return MISSING


def leaves(node: Node) -> list[Node]:
    """Every node that draws a field, in order (a union's variant choice included)."""
    found: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop(0)
        found.append(current)
        stack[:0] = [*current.children, *(v for _, v in current.variants)]
    return found


def active_fields(node: Node, data: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    """JSON path → field name, on the branches the reviewer chose (for placing errors)."""
    found: dict[tuple[Any, ...], str] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        if current.kind == "field":
            found[current.path] = current.name
        elif current.kind == "object":
            stack.extend(current.children)
        elif current.kind == "union":
            found.setdefault(current.path, f"{current.name}__variant")
            choice = data.get(f"{current.name}__variant")
            if choice not in (None, ""):
                stack.append(current.variants[int(choice)][1])
    return found


def errors_of(
    schema: dict[str, Any], value: Any, chosen: dict[tuple[Any, ...], int]
) -> list[tuple[tuple[Any, ...], str]]:
    """(JSON path, message) for every way the value breaks the schema, most precise first.

    A failed oneOf/anyOf is reported through the variant the reviewer chose, not as "is not
    valid under any of the given schemas".
    """
    try:
        validator_class = validator_for(schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError:
        return []  # the graph's schema is broken: no field-level help to give
    found: list[tuple[tuple[Any, ...], str]] = []
    pending = list(validator_class(schema).iter_errors(value))
    while pending:
        error = pending.pop(0)
        path = tuple(error.absolute_path)
        if error.validator in ("oneOf", "anyOf") and error.context:
            pick = chosen.get(path)
            inner = [
                e
                for e in error.context
                if pick is None or (e.relative_schema_path and e.relative_schema_path[0] == pick)
            ]
            if inner:
                pending[:0] = inner
                continue
        if error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    found.append(((*path, key), "This field is required."))
            continue
        found.append((path, error.message))
    return found


class SchemaForm(forms.Form):
    """A form generated from a JSON Schema; ``cleaned_data["value"]`` is the answer."""

    def __init__(
        self,
        *args: Any,
        value: Any = None,
        schema: dict[str, Any] | None = None,
        initial_value: Any = MISSING,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema or {}
        builder = Builder(self.schema)
        self.root = builder.build(
            self.schema, name="f", path=(), label="Answer", required=True, initial=initial_value
        )
        self.fields.update(builder.fields)
        for node in leaves(self.root):
            if node.kind == "field":
                node.bound = self[node.name]
            elif node.kind == "union":
                node.bound = self[f"{node.name}__variant"]

    def nodes(self) -> list[Node]:
        """What the template draws: the top object's children, or the one root node."""
        return self.root.children if self.root.kind == "object" else [self.root]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        problems: dict[str, str] = {}
        value = collect(self.root, cleaned, problems)
        for name, message in problems.items():
            self.add_error(name, message)
        if problems:
            return cleaned
        if value is MISSING:
            value = {} if self.root.kind == "object" else None
        placed = active_fields(self.root, cleaned)
        chosen = {
            node.path: int(cleaned[f"{node.name}__variant"])
            for node in leaves(self.root)
            if node.kind == "union" and cleaned.get(f"{node.name}__variant") not in (None, "")
        }
        for path, message in errors_of(self.schema, value, chosen):
            target = next(
                (placed[path[:n]] for n in range(len(path), -1, -1) if path[:n] in placed), None
            )
            self.add_error(target, message if target else f"{'/'.join(map(str, path))}: {message}")
        cleaned["value"] = value
        return cleaned


def renderable(schema: Any) -> bool:
    """Whether the generator draws something better than a JSON box for this schema."""
    if not isinstance(schema, dict) or not schema:
        return False
    try:
        builder = Builder(schema)
        root = builder.build(schema, name="f", path=(), label="Answer", required=True)
    except Exception:  # a schema too odd to walk: the JSON answer box still works
        return False
    return not (root.kind == "field" and root.convert == "json")
