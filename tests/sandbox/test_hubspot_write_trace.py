"""Conformance of the sandbox's batch writes with `objectWriteTraceId`, through
hubspot-api-client 12's own models.

HubSpot's error-handling guide ("Multi-status errors"): an input of a batch write that carries
a unique `objectWriteTraceId` fails alone — the answer is a 207 whose error names the input in
`context.objectWriteTraceId`, and whose results (`SimplePublicObject.objectWriteTraceId` in the
spec) echo theirs. Without trace ids a refused value refuses the whole batch, as before.
"""

from __future__ import annotations

from typing import Any

import pytest
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
)


def test_batch_create_with_trace_ids_fails_only_the_traced_input(hs: Any) -> None:
    batch = hs.crm.contacts.batch_api
    response = batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        {"properties": {"email": "t1@example.com"}, "objectWriteTraceId": "t1",
         "associations": []},
        {"properties": {"email": "t2@example.com", "no_such_property": "x"},
         "objectWriteTraceId": "t2", "associations": []},
        {"properties": {"email": "t3@example.com"}, "objectWriteTraceId": "t3",
         "associations": []}]))
    assert type(response).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert sorted(r.object_write_trace_id for r in response.results) == ["t1", "t3"]
    assert response.num_errors == 1
    assert response.errors[0].context == {"objectWriteTraceId": ["t2"]}
    assert "no_such_property" in response.errors[0].message


def test_batch_create_without_trace_ids_is_refused_whole(hs: Any) -> None:
    batch = hs.crm.contacts.batch_api
    with pytest.raises(ApiException) as err:
        batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
            {"properties": {"email": "w1@example.com"}, "associations": []},
            {"properties": {"no_such_property": "x"}, "associations": []}]))
    assert err.value.status == 400
    assert hs.crm.contacts.basic_api.get_page().results == []


def test_batch_update_and_upsert_echo_trace_ids_and_fail_alone(hs: Any) -> None:
    batch = hs.crm.contacts.batch_api
    created = batch.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        {"properties": {"email": f"u{i}@example.com"}, "associations": []} for i in range(2)]))
    ids = sorted(r.id for r in created.results)
    updated = batch.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": ids[0], "properties": {"firstname": "Fine"}, "objectWriteTraceId": "a"},
        # another contact's email: a conflict for this input only
        {"id": ids[1], "properties": {"email": "u0@example.com"}, "objectWriteTraceId": "b"}]))
    assert [(r.id, r.object_write_trace_id) for r in updated.results] == [(ids[0], "a")]
    assert updated.errors[0].context == {"objectWriteTraceId": ["b"]}
    upserted = batch.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"idProperty": "email", "id": "u1@example.com", "properties": {"lastname": "One"},
         "objectWriteTraceId": "x"},
        {"idProperty": "email", "id": "fresh@example.com", "properties": {"lastname": "New"},
         "objectWriteTraceId": "y"},
        {"idProperty": "email", "id": "odd@example.com", "properties": {"bogus": "1"},
         "objectWriteTraceId": "z"}]))
    assert sorted((r.object_write_trace_id, r.new) for r in upserted.results) == [
        ("x", False), ("y", True)]
    assert upserted.errors[0].context == {"objectWriteTraceId": ["z"]}
