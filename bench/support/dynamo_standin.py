"""An in-memory stand-in for one DynamoDB table, for benchmarks at a scale moto cannot hold.

moto keeps every item as a tree of DynamoType objects (kilobytes each) and answers a Query on a
global secondary index by walking every item of the table: two million stored payments do not fit
in this machine's share of memory, and sixteen shard queries over them would take minutes. This
stand-in keeps what the benchmark needs and nothing more:

- the boto3 `Table` calls our repositories make on the paths benchmarked: get_item, put_item,
  update_item (expressions evaluated by moto's own parser, validator and executor, so their meaning
  is moto's) and query (on the table or an index, with Limit and ExclusiveStartKey, as DynamoDB
  pages it); a refused condition raises the ClientError DynamoDB sends;
- every global secondary index of template.yaml, sparse as in DynamoDB (an item is in an index only
  while it has both of the index's key attributes), kept per partition and sorted by its range key,
  so a Query reads its partition only;
- "cold" items (history no job should ever touch) as compact rows, turned into items only when read:
  a Scan, or a Query on the table's own key, reads them as DynamoDB would;
- counters: items returned per (index, partition), index writes per (index, partition) (an item
  entering, changing or leaving a partition), and calls per operation.

Not modelled (not on the benchmarked paths): transactions, batches, Scan filters, projections,
item size limits, consumed capacity, throttling. bench/bench_sharded_jobs.py checks the stand-in
against moto on a small workload before it runs the large one.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import ConditionBase
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
Key = tuple[str, str]


def _wire(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _SERIALIZER.serialize(v) for k, v in item.items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _DESERIALIZER.deserialize(v) for k, v in item.items()}


def _numbers(value: Any) -> Any:
    """As boto3's resource hands items back: numbers as Decimal."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _refused(operation: str, item: dict[str, Any] | None = None) -> ClientError:
    error: dict[str, Any] = {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
    response: dict[str, Any] = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
    if item is not None:
        response["Item"] = item
    return ClientError(response, operation)  # type: ignore[arg-type]


class _Index:
    def __init__(self, hash_attr: str, range_attr: str | None):
        self.hash_attr, self.range_attr = hash_attr, range_attr
        self.partitions: dict[Any, list[tuple[Any, Key]]] = {}

    def entry(self, key: Key, item: dict[str, Any] | None) -> tuple[Any, tuple[Any, Key]] | None:
        if item is None or self.hash_attr not in item or (self.range_attr and self.range_attr not in item):
            return None  # sparse: not in the index
        return item[self.hash_attr], (item[self.range_attr] if self.range_attr else "", key)


class StandInTable:
    def __init__(self, definition: dict[str, Any]):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models.table import Table as MotoTable

        self.name = definition["TableName"]
        schema = {k["KeyType"]: k["AttributeName"] for k in definition["KeySchema"]}
        self.hash_attr, self.range_attr = schema["HASH"], schema.get("RANGE")
        self.indexes: dict[str, _Index] = {}
        for gsi in definition.get("GlobalSecondaryIndexes", []):
            keys = {k["KeyType"]: k["AttributeName"] for k in gsi["KeySchema"]}
            self.indexes[gsi["IndexName"]] = _Index(keys["HASH"], keys.get("RANGE"))
        # moto's table model, items-free: its validator needs the key schema and attribute types.
        self._moto = MotoTable(self.name, DEFAULT_ACCOUNT_ID, "us-east-1", definition["KeySchema"],
                               definition["AttributeDefinitions"], global_indexes=definition.get("GlobalSecondaryIndexes"))
        self._items: dict[Key, dict[str, Any]] = {}
        self._cold: dict[str, dict[str, Any]] = {}  # partition key -> sort key -> compact row
        self._cold_count = 0
        self._materialize: Callable[[Any], dict[str, Any]] = lambda row: row
        self.reads: Counter[tuple[str, Any]] = Counter()  # (index or "table", partition) -> items returned
        self.writes: Counter[tuple[str, Any]] = Counter()  # (index, partition) -> index writes
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()  # one request at a time, each whole (as DynamoDB isolates an item write)
        self.meta = self  # repositories reach the client as table.meta.client
        self.client = self

    # ------------------------------------------------------------------ loading
    def add_cold(self, partition: str, sort_key: str, row: Any) -> None:
        """Store one item that no index holds, compactly (e.g. a fiscalized payment); the item is
        made from `row` by the function given to materialize_cold_with when something reads it."""
        self._cold.setdefault(partition, {})[sort_key] = row
        self._cold_count += 1

    def materialize_cold_with(self, materialize: Callable[[Any], dict[str, Any]]) -> None:
        self._materialize = materialize

    @property
    def item_count(self) -> int:
        return len(self._items) + self._cold_count

    def reset_counters(self) -> None:
        self.reads.clear()
        self.writes.clear()
        self.calls.clear()

    # ------------------------------------------------------------------ the Table API used
    def get_item(self, Key: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        with self._lock:
            self.calls["GetItem"] += 1
            found = self._get(self._key(Key))
        return {"Item": _numbers(copy.deepcopy(found))} if found is not None else {}

    def put_item(self, Item: dict[str, Any], ConditionExpression: str | None = None,  # noqa: N803
                 ExpressionAttributeNames: dict[str, str] | None = None,
                 ExpressionAttributeValues: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        key = self._key(Item)
        with self._lock:
            self.calls["PutItem"] += 1
            current = self._get(key)
            if ConditionExpression and not self._holds(ConditionExpression, current, key, ExpressionAttributeNames,
                                                       ExpressionAttributeValues):
                raise _refused("PutItem")
            self._store(key, current, _plain(_wire(Item)))
        return {}

    def update_item(self, Key: dict[str, Any], UpdateExpression: str,  # noqa: N803
                    ConditionExpression: str | None = None, ExpressionAttributeNames: dict[str, str] | None = None,
                    ExpressionAttributeValues: dict[str, Any] | None = None, ReturnValues: str = "NONE",
                    **_: Any) -> dict[str, Any]:
        from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
        from moto.dynamodb.parsing.validators import UpdateExpressionValidator

        key = self._key(Key)
        values = _wire(ExpressionAttributeValues or {})
        with self._lock:
            self.calls["UpdateItem"] += 1
            current = self._get(key)
            if ConditionExpression and not self._holds(ConditionExpression, current, key, ExpressionAttributeNames,
                                                       ExpressionAttributeValues):
                raise _refused("UpdateItem")
            moto_item = self._moto_item(key, current or dict(zip((self.hash_attr, self.range_attr), key, strict=False)))
            ast = UpdateExpressionParser.make(UpdateExpression)
            validated = UpdateExpressionValidator(ast, expression_attribute_names=ExpressionAttributeNames or {},
                                                  expression_attribute_values=values, item=moto_item,
                                                  table=self._moto).validate()
            validated.normalize()
            UpdateExpressionExecutor(validated, moto_item, ExpressionAttributeNames or {}).execute()
            updated = _plain(moto_item.to_json()["Attributes"])
            self._store(key, current, updated)
        return {"Attributes": _numbers(copy.deepcopy(updated))} if ReturnValues == "ALL_NEW" else {}

    def query(self, KeyConditionExpression: ConditionBase, IndexName: str | None = None,  # noqa: N803
              Limit: int | None = None, ExclusiveStartKey: dict[str, Any] | None = None,
              ScanIndexForward: bool = True, **rest: Any) -> dict[str, Any]:
        if rest.get("FilterExpression") is not None:
            raise NotImplementedError("the stand-in does not filter")
        conditions = _conditions(KeyConditionExpression)
        with self._lock:
            self.calls["Query"] += 1
            if IndexName:
                index = self.indexes[IndexName]
                hash_attr, range_attr = index.hash_attr, index.range_attr
                partition_value = conditions[hash_attr][1]
                entries: Iterator[tuple[Any, Key]] = iter(index.partitions.get(partition_value, []))
            else:
                hash_attr, range_attr = self.hash_attr, self.range_attr
                partition_value = conditions[hash_attr][1]
                entries = self._table_partition(partition_value)
            start = None
            if ExclusiveStartKey:
                start = (ExclusiveStartKey.get(range_attr, "") if range_attr else "",
                         (ExclusiveStartKey[self.hash_attr], ExclusiveStartKey[self.range_attr]))
            found: list[dict[str, Any]] = []
            last: dict[str, Any] | None = None
            for sort_value, key in entries:
                if start is not None and (sort_value, key) <= start:
                    continue
                if range_attr and range_attr in conditions and not _compare(conditions[range_attr], sort_value):
                    continue
                item = self._get(key)
                assert item is not None
                found.append(_numbers(copy.deepcopy(item)))
                if Limit is not None and len(found) >= Limit:
                    last = {self.hash_attr: key[0], self.range_attr: key[1]}
                    if IndexName:
                        last.update({hash_attr: partition_value, range_attr: sort_value} if range_attr else {})
                    break
            self.reads[(IndexName or "table", partition_value)] += len(found)
        page: dict[str, Any] = {"Items": found, "Count": len(found)}
        if last is not None:
            page["LastEvaluatedKey"] = last
        return page

    def scan(self, **_: Any) -> dict[str, Any]:
        """What a Scan would read (every item, cold ones included): counted, not returned."""
        with self._lock:
            self.calls["Scan"] += 1
            self.reads[("table", "*")] += self.item_count
        return {"Items": [], "Count": self.item_count}

    # ------------------------------------------------------------------ internals
    def _key(self, item: dict[str, Any]) -> Key:
        return str(item[self.hash_attr]), str(item[self.range_attr]) if self.range_attr else ""

    def _get(self, key: Key) -> dict[str, Any] | None:
        found = self._items.get(key)
        if found is None:
            row = self._cold.get(key[0], {}).get(key[1])
            if row is not None:
                return self._materialize(row)
        return found

    def _table_partition(self, partition: str) -> Iterator[tuple[Any, Key]]:
        keys = {k for k in self._items if k[0] == partition}
        keys |= {(partition, sort_key) for sort_key in self._cold.get(partition, {})}
        return iter(sorted((k[1], k) for k in keys))

    def _moto_item(self, key: Key, item: dict[str, Any]) -> Any:
        from moto.dynamodb.models.dynamo_type import DynamoType
        from moto.dynamodb.models.dynamo_type import Item as MotoItem

        made = MotoItem(DynamoType({"S": key[0]}), DynamoType({"S": key[1]}) if self.range_attr else None, {})
        # Filled directly: Item() measures every attribute's size as it goes (most of its cost), and
        # no item here is near DynamoDB's 400 KB.
        made.attrs.update({name: DynamoType(value) for name, value in _wire(item).items()})
        return made

    def _holds(self, condition: str, current: dict[str, Any] | None, key: Key, names: dict[str, str] | None,
               values: dict[str, Any] | None) -> bool:
        from moto.dynamodb.comparisons import get_filter_expression

        if condition == "attribute_not_exists(pk)":  # the common insert guard, without the parser
            return current is None
        operation = get_filter_expression(condition, names or {}, _wire(values or {}))
        return bool(operation.expr(self._moto_item(key, current) if current is not None else None))

    def _store(self, key: Key, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        for name, index in self.indexes.items():
            old, new = index.entry(key, before), index.entry(key, after)
            if old == new:
                continue
            if old is not None:
                partition = index.partitions[old[0]]
                partition.pop(bisect.bisect_left(partition, old[1]))
                self.writes[(name, old[0])] += 1
            if new is not None:
                bisect.insort(index.partitions.setdefault(new[0], []), new[1])
                if old is None or old[0] != new[0]:
                    self.writes[(name, new[0])] += 1
        self._items[key] = after


def _conditions(condition: ConditionBase) -> dict[str, tuple[str, Any]]:
    """A KeyConditionExpression built with boto3's Key(...): attribute -> (operator, operand)."""
    expression = condition.get_expression()
    operator = expression["operator"]
    if operator == "AND":
        left, right = expression["values"]
        return {**_conditions(left), **_conditions(right)}
    attribute, *operands = expression["values"]
    return {attribute.name: (operator, operands[0] if len(operands) == 1 else tuple(operands))}


def _compare(condition: tuple[str, Any], value: Any) -> bool:
    operator, operand = condition
    return {"=": lambda: value == operand, "<": lambda: value < operand, "<=": lambda: value <= operand,
            ">": lambda: value > operand, ">=": lambda: value >= operand,
            "begins_with": lambda: str(value).startswith(str(operand)),
            "BETWEEN": lambda: operand[0] <= value <= operand[1]}[operator]()
