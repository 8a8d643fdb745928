"""Properties v3 (definitions and groups), the legacy v2 properties read, and custom object
schemas (none: the sandbox has the three standard object types only).

Sources: the Properties v3 and Schemas v3 specs (HubSpot/HubSpot-public-api-spec-collection)
and `hubspot.crm.properties` / `hubspot.crm.schemas` 12's models; create answers 201 and
archive 204 as the SDK's response maps say.
"""

from __future__ import annotations

from typing import Any

from crmsync.sandbox.http import Request, Response
from crmsync.sandbox.hubspot_catalog import FIELD_TYPES, TYPES, PropertyCatalog, valid_name
from crmsync.sandbox.hubspot_core import HubSpotCore
from crmsync.sandbox.hubspot_model import HubSpotError, truthy


def _not_found(what: str, name: str, object_type: str) -> HubSpotError:
    return HubSpotError(404, f"{what} {name} does not exist for {object_type}",
                        category="OBJECT_NOT_FOUND")


class PropertiesApi(HubSpotCore):
    """`/crm/v3/properties/…`, `/properties/v2/…/properties`, `/crm/v3/schemas`."""

    # ------------------------------------------------------------------ definitions
    def list_properties(self, request: Request) -> Response:
        object_type = self._type_of(request)
        archived = truthy(request.arg("archived"))
        wanted = set(request.args("properties"))
        results = [PropertyCatalog.render(d)
                   for d in self._definitions(object_type).values()
                   if d["archived"] == archived and (not wanted or d["name"] in wanted)]
        return Response(200, {"results": results})

    def _definition(self, request: Request, *, archived: bool = False) -> dict[str, Any]:
        object_type = self._type_of(request)
        name = request.path_params["propertyName"]
        definition = self._definitions(object_type).get(name)
        if definition is None or definition["archived"] != archived:
            raise _not_found("Property", name, object_type)
        return definition

    def _definitions(self, object_type: str) -> dict[str, dict[str, Any]]:
        """Stored definitions, and for deals the calculated stage dates of every stage."""
        stored = self.catalog.definitions[object_type]
        if object_type != "deals":
            return stored
        stages = [(s["id"], s["label"]) for p in self.pipelines.values() if not p["archived"]
                  for s in self._active_stages(p)]
        return {**stored, **self.catalog.stage_dates(stages)}

    def get_property(self, request: Request) -> Response:
        definition = self._definition(request, archived=truthy(request.arg("archived")))
        return Response(200, PropertyCatalog.render(definition))

    def _check_options(self, kind: str, options: Any) -> list[dict[str, Any]]:
        if options is None:
            options = []
        if not isinstance(options, list):
            raise HubSpotError(400, "options must be a list of {label, value}")
        out, seen = [], set()
        for i, option in enumerate(options):
            if not isinstance(option, dict) or not isinstance(option.get("value"), str) \
                    or not isinstance(option.get("label"), str):
                raise HubSpotError(400, f"options[{i}] needs a string label and value")
            if option["value"] in seen:
                raise HubSpotError(400, f"options[{i}]: duplicate option value "
                                   f"{option['value']!r}")
            seen.add(option["value"])
            out.append({"label": option["label"], "value": option["value"],
                        "displayOrder": option.get("displayOrder", i),
                        "hidden": bool(option.get("hidden", False)),
                        **({"description": option["description"]}
                           if isinstance(option.get("description"), str) else {})})
        if kind == "enumeration" and not out:
            # "enumeration" properties need options (properties guide, "Create a property")
            raise HubSpotError(400, "enumeration properties need at least one option")
        return out

    def _check_group(self, object_type: str, group: Any) -> str:
        if not isinstance(group, str) or group not in self._groups(object_type):
            raise HubSpotError(400, f"Property group {group!r} does not exist for "
                               f"{object_type}", subCategory="PROPERTY_GROUP_NOT_FOUND")
        return group

    def _groups(self, object_type: str) -> dict[str, dict[str, Any]]:
        return {n: g for n, g in self.catalog.groups[object_type].items() if not g["archived"]}

    def create_property(self, request: Request) -> Response:
        object_type = self._type_of(request)
        body = self._body(request)
        name, label = body.get("name"), body.get("label")
        kind, field_type = body.get("type"), body.get("fieldType")
        if not valid_name(name):
            raise HubSpotError(400, f"name {name!r} is not a valid internal name: lower-case "
                               "letters, digits and underscores, starting with a letter")
        if not isinstance(label, str) or not label.strip():
            raise HubSpotError(400, "label is required")
        if kind not in TYPES:
            raise HubSpotError(400, f"type must be one of {list(TYPES)}, got {kind!r}")
        if field_type not in FIELD_TYPES:
            raise HubSpotError(400, f"fieldType must be one of {list(FIELD_TYPES)}, got "
                               f"{field_type!r}")
        group = self._check_group(object_type, body.get("groupName"))
        if name in self.catalog.definitions[object_type]:
            # unconfirmed wording; HubSpot answers 409 for an existing name
            raise HubSpotError(409, f"A property named {name!r} already exists for "
                               f"{object_type}", category="CONFLICT",
                               subCategory="PROPERTY_ALREADY_EXISTS")
        definition = self.catalog.new_definition(
            name=str(name), label=label, kind=kind, field_type=field_type, group=group,
            options=self._check_options(kind, body.get("options")), created=self.now_ms(),
            description=str(body.get("description") or ""),
            display_order=int(body.get("displayOrder", -1)))
        for flag in ("hidden", "formField", "hasUniqueValue", "externalOptions"):
            if flag in body:
                definition[flag] = bool(body[flag])
        self.catalog.definitions[object_type][str(name)] = definition
        self.catalog.changed()
        self._touch()
        return Response(201, PropertyCatalog.render(definition))

    def update_property(self, request: Request) -> Response:
        definition = self._definition(request)
        object_type = self._type_of(request)
        body = self._body(request)
        if definition["modificationMetadata"]["readOnlyDefinition"]:
            raise HubSpotError(400, f"{definition['name']} is a HubSpot-defined property; its "
                               "definition cannot be changed", subCategory="READ_ONLY_DEFINITION")
        kind = body.get("type", definition["type"])
        if kind not in TYPES:
            raise HubSpotError(400, f"type must be one of {list(TYPES)}, got {kind!r}")
        if body.get("fieldType", definition["fieldType"]) not in FIELD_TYPES:
            raise HubSpotError(400, f"fieldType must be one of {list(FIELD_TYPES)}")
        if "groupName" in body:
            definition["groupName"] = self._check_group(object_type, body["groupName"])
        if "options" in body:
            definition["options"] = self._check_options(kind, body["options"])
        for key in ("label", "description", "fieldType", "displayOrder", "hidden", "formField",
                    "calculationFormula"):
            if key in body:
                definition[key] = body[key]
        definition["type"] = kind
        definition["updatedAt"] = self.now_ms()
        self.catalog.changed()
        self._touch()
        return Response(200, PropertyCatalog.render(definition))

    def archive_property(self, request: Request) -> Response:
        definition = self._definition(request)
        if not definition["modificationMetadata"]["archivable"]:
            raise HubSpotError(400, f"{definition['name']} is a HubSpot-defined property and "
                               "cannot be archived", subCategory="PROPERTY_NOT_ARCHIVABLE")
        now = self.now_ms()
        definition.update(archived=True, archivedAt=now, updatedAt=now)
        self.catalog.changed()
        self._touch()
        return Response(204)

    def list_properties_v2(self, request: Request) -> Response:
        """Legacy `GET /properties/v2/{objectType}/properties`: a bare JSON list."""
        object_type = self._type_of(request)
        return Response(200, [PropertyCatalog.render_v2(d)
                              for d in self._definitions(object_type).values()
                              if not d["archived"]])

    # ------------------------------------------------------------------ groups
    def _group(self, request: Request) -> dict[str, Any]:
        object_type = self._type_of(request)
        name = request.path_params["groupName"]
        group = self._groups(object_type).get(name)
        if group is None:
            raise _not_found("Property group", name, object_type)
        return group

    def list_groups(self, request: Request) -> Response:
        object_type = self._type_of(request)
        return Response(200, {"results": list(self._groups(object_type).values())})

    def get_group(self, request: Request) -> Response:
        return Response(200, self._group(request))

    def create_group(self, request: Request) -> Response:
        object_type = self._type_of(request)
        body = self._body(request)
        name, label = body.get("name"), body.get("label")
        if not valid_name(name):
            raise HubSpotError(400, f"name {name!r} is not a valid internal name")
        if not isinstance(label, str) or not label.strip():
            raise HubSpotError(400, "label is required")
        if str(name) in self.catalog.groups[object_type]:
            raise HubSpotError(409, f"A property group named {name!r} already exists",
                               category="CONFLICT")
        group = self.catalog.new_group(str(name), label, int(body.get("displayOrder", -1)))
        self.catalog.groups[object_type][str(name)] = group
        self._touch()
        return Response(201, group)

    def update_group(self, request: Request) -> Response:
        group = self._group(request)
        body = self._body(request)
        for key in ("label", "displayOrder"):
            if key in body:
                group[key] = body[key]
        self._touch()
        return Response(200, group)

    def archive_group(self, request: Request) -> Response:
        group = self._group(request)
        object_type = self._type_of(request)
        if any(d["groupName"] == group["name"] for d in self.catalog.active(object_type).values()):
            # unconfirmed wording: HubSpot refuses to archive a group that still has properties
            raise HubSpotError(400, f"Property group {group['name']} still has properties; "
                               "move or archive them first")
        group["archived"] = True
        self._touch()
        return Response(204)

    # ------------------------------------------------------------------ schemas
    def list_schemas(self, request: Request) -> Response:
        """Custom object schemas: a portal without custom objects has none."""
        return Response(200, {"results": []})

    def get_schema(self, request: Request) -> Response:
        raise HubSpotError(404, f"Unable to find object type {request.path_params['objectType']}",
                           category="OBJECT_NOT_FOUND")
